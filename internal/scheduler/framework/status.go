// Package framework is the scheduler's plugin framework: the extension points a
// scheduling concern implements (PreFilter, Filter, PreScore, Score, NormalizeScore),
// the per-node state plugins read (NodeInfo, Snapshot), and the Framework that runs
// the plugins for one pod.
package framework

import (
	"errors"
	"strings"
)

// Code is the outcome of a plugin at one extension point.
type Code int

const (
	// Success: the pod passes (a nil *Status means Success too).
	Success Code = iota
	// Error: the plugin failed for a reason unrelated to the pod's fit; the pod is retried.
	Error
	// Unschedulable: the pod does not fit the node now, but might after other pods go
	// (preemption could help).
	Unschedulable
	// UnschedulableAndUnresolvable: the pod does not fit the node, and removing pods would
	// not change that (taints, labels, cordon).
	UnschedulableAndUnresolvable
	// Skip: returned by PreFilter or PreScore when the plugin has nothing to check for
	// this pod; its Filter or Score is then not called.
	Skip
)

func (c Code) String() string {
	switch c {
	case Success:
		return "Success"
	case Error:
		return "Error"
	case Unschedulable:
		return "Unschedulable"
	case UnschedulableAndUnresolvable:
		return "UnschedulableAndUnresolvable"
	case Skip:
		return "Skip"
	}
	return "Unknown"
}

// Status is what a plugin says about a pod: "does not fit" is a Status with reasons,
// not an error. A nil *Status is Success.
type Status struct {
	code    Code
	reasons []string
	err     error
	plugin  string
}

// NewStatus makes a Status with the given code and reasons (user-facing phrases such as
// "Insufficient cpu", counted per node in the FailedScheduling message).
func NewStatus(code Code, reasons ...string) *Status {
	return &Status{code: code, reasons: reasons}
}

// AsStatus wraps an error as an Error status.
func AsStatus(err error) *Status {
	if err == nil {
		return nil
	}
	return &Status{code: Error, reasons: []string{err.Error()}, err: err}
}

// Code is the status's code; Success for a nil status.
func (s *Status) Code() Code {
	if s == nil {
		return Success
	}
	return s.code
}

// Reasons are the status's user-facing reasons.
func (s *Status) Reasons() []string {
	if s == nil {
		return nil
	}
	return s.reasons
}

// Message joins the reasons.
func (s *Status) Message() string {
	if s == nil {
		return ""
	}
	return strings.Join(s.reasons, ", ")
}

// Plugin is the name of the plugin that returned the status, set by the Framework.
func (s *Status) Plugin() string {
	if s == nil {
		return ""
	}
	return s.plugin
}

// IsSuccess reports whether the status is Success.
func (s *Status) IsSuccess() bool { return s.Code() == Success }

// IsSkip reports whether the status is Skip.
func (s *Status) IsSkip() bool { return s.Code() == Skip }

// IsRejected reports whether the pod does not fit (Unschedulable or UnschedulableAndUnresolvable).
func (s *Status) IsRejected() bool {
	c := s.Code()
	return c == Unschedulable || c == UnschedulableAndUnresolvable
}

// AsError is the status as an error (nil for Success and Skip).
func (s *Status) AsError() error {
	if s.IsSuccess() || s.IsSkip() {
		return nil
	}
	if s.err != nil {
		return s.err
	}
	return errors.New(s.Message())
}

// withPlugin records which plugin returned the status.
func (s *Status) withPlugin(name string) *Status {
	if s != nil {
		s.plugin = name
	}
	return s
}
