package apiserver

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// fieldValidation is the ?fieldValidation= of a write: what to do about unknown and
// duplicate fields in the body. Strict refuses the request (400); Warn, the default as
// upstream, accepts it and says so in Warning headers; Ignore drops them silently.
type fieldValidation string

const (
	validationStrict fieldValidation = "Strict"
	validationWarn   fieldValidation = "Warn"
	validationIgnore fieldValidation = "Ignore"
)

func fieldValidationOf(r *http.Request) fieldValidation {
	switch v := r.URL.Query().Get("fieldValidation"); {
	case strings.EqualFold(v, "Strict"):
		return validationStrict
	case strings.EqualFold(v, "Ignore"):
		return validationIgnore
	}
	return validationWarn
}

// checkUnknownFields handles the error of a strict decode of a gvk: a strict decoding
// error (unknown or duplicate fields) is the 400 upstream gives under Strict, Warning
// headers under Warn, nothing under Ignore; other errors pass through.
func checkUnknownFields(r *http.Request, gvk schema.GroupVersionKind, err error) error {
	if err == nil || !runtime.IsStrictDecodingError(err) {
		return err
	}
	switch fieldValidationOf(r) {
	case validationStrict:
		return apierrors.NewBadRequest(fmt.Sprintf("%s in version %q cannot be handled as a %s: %v", gvk.Kind, gvk.Version, gvk.Kind, err))
	case validationWarn:
		if se, ok := runtime.AsStrictDecodingError(err); ok {
			for _, e := range se.Errors() {
				addWarning(r.Context(), e.Error())
			}
		} else {
			addWarning(r.Context(), err.Error())
		}
	}
	return nil
}

type warningsKey struct{}

// withWarnings lets the handlers below add Warning headers to w (before they write it),
// each message once, as upstream's recorder does (an update that is retried warns again).
func withWarnings(w http.ResponseWriter, r *http.Request) *http.Request {
	var mu sync.Mutex
	sent := map[string]bool{}
	add := func(msg string) {
		mu.Lock()
		defer mu.Unlock()
		if !sent[msg] {
			sent[msg] = true
			w.Header().Add("Warning", "299 - "+strconv.Quote(msg))
		}
	}
	return r.WithContext(context.WithValue(r.Context(), warningsKey{}, add))
}

// addWarning sends the client a warning (kubectl prints "Warning: msg").
func addWarning(ctx context.Context, msg string) {
	if add, ok := ctx.Value(warningsKey{}).(func(string)); ok {
		add(msg)
	}
}
