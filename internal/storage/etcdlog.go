package storage

import (
	"strings"

	"go.uber.org/zap/zapcore"
)

// quietCore drops the one error etcd logs on every fresh start: its storage-version
// monitor runs before the first term reaches the backend, fails with "missing term
// information", and succeeds on its next round a few seconds later.
type quietCore struct{ zapcore.Core }

func (c quietCore) With(fields []zapcore.Field) zapcore.Core { return quietCore{c.Core.With(fields)} }

func (c quietCore) Check(e zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if e.Message == "failed to update storage version" && c.Enabled(e.Level) {
		return ce.AddCore(e, c)
	}
	return c.Core.Check(e, ce)
}

func (c quietCore) Write(e zapcore.Entry, fields []zapcore.Field) error {
	for _, f := range fields {
		if err, ok := f.Interface.(error); ok && f.Type == zapcore.ErrorType && strings.Contains(err.Error(), "missing term information") {
			return nil
		}
	}
	return c.Core.Write(e, fields)
}
