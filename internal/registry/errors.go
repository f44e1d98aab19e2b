package registry

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
)

// Code is an error code of the OCI distribution spec, with the HTTP status it is sent with.
type Code struct {
	Name   string
	Status int
}

// The error codes of the distribution spec (and, for UNKNOWN and PAGINATION_NUMBER_INVALID,
// of the reference registry, which clients also know).
var (
	CodeBlobUnknown         = Code{"BLOB_UNKNOWN", http.StatusNotFound}
	CodeBlobUploadInvalid   = Code{"BLOB_UPLOAD_INVALID", http.StatusBadRequest}
	CodeBlobUploadUnknown   = Code{"BLOB_UPLOAD_UNKNOWN", http.StatusNotFound}
	CodeDigestInvalid       = Code{"DIGEST_INVALID", http.StatusBadRequest}
	CodeManifestBlobUnknown = Code{"MANIFEST_BLOB_UNKNOWN", http.StatusBadRequest}
	CodeManifestInvalid     = Code{"MANIFEST_INVALID", http.StatusBadRequest}
	CodeManifestUnknown     = Code{"MANIFEST_UNKNOWN", http.StatusNotFound}
	CodeNameInvalid         = Code{"NAME_INVALID", http.StatusBadRequest}
	CodeNameUnknown         = Code{"NAME_UNKNOWN", http.StatusNotFound}
	CodeSizeInvalid         = Code{"SIZE_INVALID", http.StatusBadRequest}
	CodeUnauthorized        = Code{"UNAUTHORIZED", http.StatusUnauthorized}
	CodeDenied              = Code{"DENIED", http.StatusForbidden}
	CodeUnsupported         = Code{"UNSUPPORTED", http.StatusMethodNotAllowed}
	CodeTooManyRequests     = Code{"TOOMANYREQUESTS", http.StatusTooManyRequests}
	CodePaginationInvalid   = Code{"PAGINATION_NUMBER_INVALID", http.StatusBadRequest}
	CodeUnknown             = Code{"UNKNOWN", http.StatusInternalServerError}
)

// Error is a failure the client is told about: a spec code, a message and optional detail.
// Storage and parsing code returns these (or wraps them) so that the HTTP edge only has to
// write them out.
type Error struct {
	Code    Code
	Message string
	Detail  any
	// Status overrides Code.Status when non-zero (413 for an oversize manifest, 416 for an
	// out-of-order chunk, as the spec asks).
	Status int
}

func (e *Error) Error() string { return e.Code.Name + ": " + e.Message }

func newError(c Code, detail any, format string, args ...any) *Error {
	return &Error{Code: c, Message: fmt.Sprintf(format, args...), Detail: detail}
}

// errorBody is the spec's error envelope.
type errorBody struct {
	Errors []errorEntry `json:"errors"`
}

type errorEntry struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Detail  any    `json:"detail,omitempty"`
}

// writeError sends err in the spec's shape. Errors that are not *Error are internal failures:
// the client gets UNKNOWN with a generic message and the cause is logged by the caller.
func writeError(w http.ResponseWriter, err error) {
	var e *Error
	if !errors.As(err, &e) {
		e = &Error{Code: CodeUnknown, Message: "internal error"}
	}
	status := e.Status
	if status == 0 {
		status = e.Code.Status
	}
	body, _ := json.Marshal(errorBody{Errors: []errorEntry{{Code: e.Code.Name, Message: e.Message, Detail: e.Detail}}})
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", fmt.Sprint(len(body)))
	h.Del("Docker-Content-Digest")
	h.Del("Etag")
	w.WriteHeader(status)
	w.Write(body)
}
