// Package errdefs holds the error kinds the engine reports. Engine packages wrap these
// sentinels ("container %s: %w"); the API edges (dockerapi, cri) map them to status codes.
package errdefs

import "errors"

var (
	ErrNotFound       = errors.New("not found")
	ErrConflict       = errors.New("conflict")
	ErrInvalid        = errors.New("invalid argument")
	ErrNotModified    = errors.New("not modified")
	ErrUnavailable    = errors.New("unavailable")
	ErrForbidden      = errors.New("forbidden")
	ErrNotImplemented = errors.New("not implemented")
	ErrUnauthorized   = errors.New("unauthorized")
)

// Error is an error whose message is shown to the user as is, with a kind for the
// status code. Use it where Docker's exact wording matters.
type Error struct {
	Kind error
	Msg  string
}

func (e *Error) Error() string { return e.Msg }
func (e *Error) Unwrap() error { return e.Kind }

// New returns an error of kind with Docker's wording msg.
func New(kind error, msg string) error { return &Error{Kind: kind, Msg: msg} }

// NotFound, Conflict and Invalid are shorthands for New.
func NotFound(msg string) error    { return New(ErrNotFound, msg) }
func Conflict(msg string) error    { return New(ErrConflict, msg) }
func Invalid(msg string) error     { return New(ErrInvalid, msg) }
func Unavailable(msg string) error { return New(ErrUnavailable, msg) }
