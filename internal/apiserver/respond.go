package apiserver

import (
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// mediaType is one entry of an Accept header.
type mediaType struct {
	typ    string // "application/json"
	params map[string]string
}

func parseAccept(h string) []mediaType {
	if strings.TrimSpace(h) == "" {
		return []mediaType{{typ: "*/*"}}
	}
	var out []mediaType
	for _, part := range strings.Split(h, ",") {
		t, params, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err != nil {
			continue
		}
		out = append(out, mediaType{typ: t, params: params})
	}
	return out
}

// outputFor picks the serializer for the response, from the Accept header: the first
// type Berth can write. Table requests are served by table-capable handlers; the others
// skip them here, as kube-apiserver falls back to the next type the client lists.
func outputFor(r *http.Request, allowTable bool) (info runtime.SerializerInfo, asTable bool, err error) {
	supported := codecs.SupportedMediaTypes()
	for _, m := range parseAccept(r.Header.Get("Accept")) {
		if as := m.params["as"]; as != "" {
			if as == "Table" && allowTable && m.params["g"] == "meta.k8s.io" && (m.params["v"] == "v1" || m.params["v"] == "v1beta1") {
				for _, s := range supported {
					if s.MediaType == m.typ || (m.typ == "*/*" && s.MediaType == "application/json") {
						return s, true, nil
					}
				}
			}
			continue
		}
		for _, s := range supported {
			if s.MediaType == m.typ || (s.MediaType == "application/json" && (m.typ == "*/*" || m.typ == "application/*")) {
				return s, false, nil
			}
		}
	}
	return runtime.SerializerInfo{}, false, statusError(http.StatusNotAcceptable, metav1.StatusReasonNotAcceptable, fmt.Sprintf("only the following media types are accepted: %s", strings.Join(mediaTypes(), ", ")))
}

func mediaTypes() []string {
	var out []string
	for _, s := range codecs.SupportedMediaTypes() {
		out = append(out, s.MediaType)
	}
	return out
}

// writeObject encodes obj as the client asked (in gv, the object's own group version).
func (s *Server) writeObject(w http.ResponseWriter, r *http.Request, code int, obj runtime.Object, gv schema.GroupVersion) {
	info, _, err := outputFor(r, false)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	s.encode(w, code, info, obj, gv)
}

func (s *Server) encode(w http.ResponseWriter, code int, info runtime.SerializerInfo, obj runtime.Object, gv runtime.GroupVersioner) {
	enc := codecs.EncoderForVersion(info.Serializer, gv)
	if _, ok := obj.(runtime.Unstructured); ok {
		// Custom resources: no Go types to convert through, nor protobuf messages.
		if info.MediaType == runtime.ContentTypeProtobuf {
			info, _ = runtime.SerializerInfoForMediaType(codecs.SupportedMediaTypes(), runtime.ContentTypeJSON)
		}
		enc = info.Serializer
	}
	w.Header().Set("Content-Type", info.MediaType)
	w.Header().Set("Cache-Control", "no-cache, private")
	w.WriteHeader(code)
	if err := enc.Encode(obj, w); err != nil {
		s.log.Error("encode response", "kind", obj.GetObjectKind().GroupVersionKind().Kind, "err", err)
	}
}

// writeRaw writes a discovery document as JSON (discovery is JSON only).
func (s *Server) writeRaw(w http.ResponseWriter, r *http.Request, code int, contentType string, v any) {
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("Cache-Control", "no-cache, private")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

// writeError answers with a Status object carrying the error's reason and code.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	status := errorStatus(err)
	if status.Code >= 500 {
		s.log.Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	info, _, nerr := outputFor(r, false)
	if nerr != nil {
		info, _, _ = outputFor(&http.Request{Header: http.Header{}}, false)
	}
	status.Kind, status.APIVersion = "Status", "v1"
	s.encode(w, int(status.Code), info, status, schema.GroupVersion{Version: "v1"})
}

func errorStatus(err error) *metav1.Status {
	var se apierrors.APIStatus
	if errors.As(err, &se) {
		st := se.Status()
		return &st
	}
	return &apierrors.NewInternalError(err).ErrStatus
}

// statusError is an API error with a code and reason apimachinery has no helper for.
func statusError(code int32, reason metav1.StatusReason, msg string) error {
	return &apierrors.StatusError{ErrStatus: metav1.Status{Status: metav1.StatusFailure, Code: code, Reason: reason, Message: msg}}
}
