package apiserver

import (
	"bytes"
	"crypto/sha512"
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"runtime/debug"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/kube-openapi/pkg/builder"
	"k8s.io/kube-openapi/pkg/builder3"
	"k8s.io/kube-openapi/pkg/common"
	"k8s.io/kube-openapi/pkg/handler"
	"k8s.io/kube-openapi/pkg/handler3"
	"k8s.io/kube-openapi/pkg/spec3"
	"k8s.io/kube-openapi/pkg/util"
	"k8s.io/kube-openapi/pkg/validation/spec"

	"github.com/berth-project/berth/internal/apiserver/openapi"
)

// openAPI serves /openapi/v2 (JSON and protobuf) and /openapi/v3 (an index with hashes,
// and one document per group version). The documents are made from the definitions
// openapi-gen generated from the Go types (package openapi), plus the custom resources'
// schemas, and the registry's routes, with kube-openapi's builders. Each is built on
// first request and kept as its serialized bytes only (the parsed specs are several
// times larger), with a SHA-512 ETag; a change of the served resources (CRDs) drops them.
type openAPI struct {
	mu  sync.Mutex
	gen int // bumped when the served resources change
	v2  *openAPIDoc
	v3  map[string]*openAPIDoc // by gvPath, for generation v3gen
	// v3gen is the generation v3 was made for; gvs the group versions it has then.
	v3gen int
	gvs   map[string]bool
}

// openAPIDoc is one document, serialized.
type openAPIDoc struct {
	json     []byte
	etag     string
	proto    []byte // made on first protobuf request
	modified time.Time
}

const (
	protoV2 = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf"
	protoV3 = "application/com.github.proto-openapi.spec.v3.v1.0+protobuf"
)

func newOpenAPIDoc(v any) (*openAPIDoc, error) {
	data, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return &openAPIDoc{json: data, etag: fmt.Sprintf("%X", sha512.Sum512(data)), modified: time.Now()}, nil
}

// refreshOpenAPI drops the built documents: the next request builds them from the
// registry as it is then.
func (s *Server) refreshOpenAPI() {
	s.oapi.mu.Lock()
	defer s.oapi.mu.Unlock()
	s.oapi.gen++
	s.oapi.v2, s.oapi.v3 = nil, nil
}

func (s *Server) serveOpenAPI(w http.ResponseWriter, r *http.Request) {
	path := strings.TrimSuffix(r.URL.Path, "/")
	built, err := s.serveOpenAPIDoc(w, r, path)
	if err != nil {
		s.writeError(w, r, err)
	}
	if built {
		// Building left many times what is kept: give it back rather than hold it idle.
		debug.FreeOSMemory()
	}
}

// serveOpenAPIDoc answers one OpenAPI request; built says whether it built documents.
func (s *Server) serveOpenAPIDoc(w http.ResponseWriter, r *http.Request, path string) (built bool, err error) {
	o := &s.oapi
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.v3 == nil || o.v3gen != o.gen {
		o.v3, o.v3gen, o.gvs = map[string]*openAPIDoc{}, o.gen, map[string]bool{}
		for _, gv := range s.reg.groups() {
			o.gvs[gvPath(gv)] = true
		}
	}
	w.Header().Add("Vary", "Accept")
	switch {
	case path == "/openapi/v2":
		if o.v2 == nil {
			sw, err := s.buildSwagger()
			if err == nil {
				o.v2, err = newOpenAPIDoc(sw)
			}
			if err != nil {
				return true, apierrors.NewInternalError(fmt.Errorf("openapi v2: %w", err))
			}
			built = true
		}
		return built, serveDoc(w, r, o.v2, protoV2, handler.ToProtoBinary)
	case path == "/openapi/v3":
		index := map[string]any{}
		for p := range o.gvs {
			d, b, err := s.openAPIv3Doc(p)
			if err != nil {
				return true, err
			}
			built = built || b
			index[p] = map[string]string{"serverRelativeURL": "/openapi/v3/" + p + "?hash=" + d.etag}
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-cache, private")
		json.NewEncoder(w).Encode(map[string]any{"paths": index})
		return built, nil
	}
	p := strings.TrimPrefix(path, "/openapi/v3/")
	if !o.gvs[p] {
		return false, apierrors.NewNotFound(schema.GroupResource{}, path)
	}
	d, built, err := s.openAPIv3Doc(p)
	if err != nil {
		return built, err
	}
	if hash := r.URL.Query().Get("hash"); hash != "" {
		if hash != d.etag {
			// An old hash: send the client to the current document (as upstream does).
			http.Redirect(w, r, "/openapi/v3/"+p+"?hash="+d.etag, http.StatusMovedPermanently)
			return built, nil
		}
		w.Header().Set("Cache-Control", "public, immutable")
		w.Header().Set("Expires", time.Now().AddDate(1, 0, 0).Format(time.RFC1123))
	}
	return built, serveDoc(w, r, d, protoV3, handler3.ToV3ProtoBinary)
}

// openAPIv3Doc returns a group version's document, building it if needed (o.mu held).
func (s *Server) openAPIv3Doc(p string) (*openAPIDoc, bool, error) {
	o := &s.oapi
	if d := o.v3[p]; d != nil {
		return d, false, nil
	}
	var gv schema.GroupVersion
	if rest, ok := strings.CutPrefix(p, "api/"); ok {
		gv.Version = rest
	} else {
		gv.Group, gv.Version, _ = strings.Cut(strings.TrimPrefix(p, "apis/"), "/")
	}
	doc, err := s.buildOpenAPIv3(gv)
	if err != nil {
		return nil, true, apierrors.NewInternalError(fmt.Errorf("openapi v3 %s: %w", p, err))
	}
	d, err := newOpenAPIDoc(doc)
	if err != nil {
		return nil, true, apierrors.NewInternalError(err)
	}
	o.v3[p] = d
	return d, true, nil
}

// serveDoc writes a document as JSON or, when the client asks for it first, protobuf
// (kubectl asks for protobuf v2 and takes nothing else there).
func serveDoc(w http.ResponseWriter, r *http.Request, d *openAPIDoc, protoType string, toProto func([]byte) ([]byte, error)) error {
	accept := r.Header.Get("Accept")
	if accept == "" {
		accept = "*/*"
	}
	for _, part := range strings.Split(accept, ",") {
		t := strings.TrimSpace(strings.Split(part, ";")[0])
		body, ct := d.json, "application/json"
		switch t {
		case "application/json", "application/*", "*/*":
		case protoType, strings.Replace(protoType, ".v1.0+", "@v1.0+", 1):
			if d.proto == nil {
				pb, err := toProto(d.json)
				if err != nil {
					return apierrors.NewInternalError(fmt.Errorf("openapi protobuf: %w", err))
				}
				d.proto = pb
			}
			body, ct = d.proto, protoType
		default:
			continue
		}
		w.Header().Set("Content-Type", ct)
		w.Header().Set("Etag", strconv.Quote(d.etag))
		http.ServeContent(w, r, "", d.modified, bytes.NewReader(body))
		return nil
	}
	return statusError(http.StatusNotAcceptable, metav1.StatusReasonNotAcceptable, "only application/json and "+protoType+" are served here")
}

// gvPath is the OpenAPI v3 name of a group version: "api/v1", "apis/apps/v1".
func gvPath(gv schema.GroupVersion) string {
	if gv.Group == "" {
		return "api/" + gv.Version
	}
	return "apis/" + gv.Group + "/" + gv.Version
}

func (s *Server) buildSwagger() (*spec.Swagger, error) {
	var rcs []common.RouteContainer
	for _, gv := range s.reg.groups() {
		rcs = append(rcs, openAPIRoutes(s.reg.in(gv), gv))
	}
	return builder.BuildOpenAPISpecFromRoutes(rcs, &common.Config{
		Info:              s.openAPIInfo(),
		GetDefinitions:    s.openAPIDefinitionsV2,
		GetDefinitionName: s.definitionName,
		CommonResponses:   map[int]spec.Response{http.StatusUnauthorized: {ResponseProps: spec.ResponseProps{Description: "Unauthorized"}}},
	})
}

func (s *Server) openAPIInfo() *spec.Info {
	v := s.version.GitVersion
	if v == "" {
		v = "unversioned" // the v2 document requires one
	}
	return &spec.Info{InfoProps: spec.InfoProps{Title: "Kubernetes", Version: v}}
}

func (s *Server) openAPIv3Config() *common.OpenAPIV3Config {
	return &common.OpenAPIV3Config{
		Info:              s.openAPIInfo(),
		GetDefinitions:    s.openAPIDefinitions,
		GetDefinitionName: s.definitionName,
		CommonResponses:   map[int]*spec3.Response{http.StatusUnauthorized: {ResponseProps: spec3.ResponseProps{Description: "Unauthorized"}}},
	}
}

func (s *Server) buildOpenAPIv3(gv schema.GroupVersion) (*spec3.OpenAPI, error) {
	return builder3.BuildOpenAPISpecFromRoutes([]common.RouteContainer{openAPIRoutes(s.reg.in(gv), gv)}, s.openAPIv3Config())
}

// openAPIDefinitions are the generated definitions of the built-in types and those of
// the custom resources served.
func (s *Server) openAPIDefinitions(ref common.ReferenceCallback) map[string]common.OpenAPIDefinition {
	defs := openapi.GetOpenAPIDefinitions(ref)
	for _, r := range s.reg.all() {
		if r.custom != nil {
			for name, d := range r.custom.definitions(r, ref) {
				defs[name] = d
			}
		}
	}
	return defs
}

// openAPIDefinitionsV2 are the definitions as OpenAPI v2 can say them: the custom
// resources' schemas lose what only v3 has (nullable, anyOf, oneOf, allOf, not), as
// upstream strips them, or the v2 document would not parse.
func (s *Server) openAPIDefinitionsV2(ref common.ReferenceCallback) map[string]common.OpenAPIDefinition {
	defs := s.openAPIDefinitions(ref)
	for _, r := range s.reg.all() {
		if r.custom == nil {
			continue
		}
		name := string(modelName(r, false))
		if d, ok := defs[name]; ok {
			d.Schema = *schemaV2(&d.Schema)
			defs[name] = d
		}
	}
	return defs
}

// schemaV2 is a copy of a schema without what OpenAPI v2 lacks.
func schemaV2(in *spec.Schema) *spec.Schema {
	if in == nil {
		return nil
	}
	out := *in
	if out.Nullable {
		out.Nullable, out.Type = false, nil // v2 cannot say "this type, or null"
	}
	out.AnyOf, out.OneOf, out.AllOf, out.Not = nil, nil, nil, nil
	if in.Properties != nil {
		out.Properties = make(map[string]spec.Schema, len(in.Properties))
		for k, v := range in.Properties {
			out.Properties[k] = *schemaV2(&v)
		}
	}
	if in.Items != nil && in.Items.Schema != nil {
		out.Items = &spec.SchemaOrArray{Schema: schemaV2(in.Items.Schema)}
	}
	if in.AdditionalProperties != nil && in.AdditionalProperties.Schema != nil {
		out.AdditionalProperties = &spec.SchemaOrBool{Allows: true, Schema: schemaV2(in.AdditionalProperties.Schema)}
	}
	return &out
}

// definitionName keeps the model names and marks the kinds with
// x-kubernetes-group-version-kind, which is how kubectl finds a kind's schema.
func (s *Server) definitionName(name string) (string, spec.Extensions) {
	gvks := builtinGVKs()[name]
	if gvks == nil {
		for _, r := range s.reg.all() {
			if r.custom != nil && string(modelName(r, false)) == name {
				gvks = []schema.GroupVersionKind{r.gvk()}
			}
		}
	}
	if len(gvks) == 0 {
		return name, nil
	}
	var list []any
	for _, gvk := range gvks {
		list = append(list, map[string]any{"group": gvk.Group, "version": gvk.Version, "kind": gvk.Kind})
	}
	return name, spec.Extensions{"x-kubernetes-group-version-kind": list}
}

// builtinGVKs maps the model name of every type in the scheme to its kinds.
var builtinGVKs = sync.OnceValue(func() map[string][]schema.GroupVersionKind {
	out := map[string][]schema.GroupVersionKind{}
	for gvk, t := range scheme.AllKnownTypes() {
		if gvk.Version == "__internal" {
			continue
		}
		name := util.GetCanonicalTypeName(reflect.New(t).Interface())
		out[name] = append(out[name], gvk)
	}
	for _, l := range out {
		sort.Slice(l, func(i, j int) bool { return l[i].String() < l[j].String() })
	}
	return out
})
