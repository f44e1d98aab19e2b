package apiserver

import (
	"net/http"
	"reflect"
	"runtime/debug"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/kube-openapi/pkg/builder"
	"k8s.io/kube-openapi/pkg/builder3"
	"k8s.io/kube-openapi/pkg/cached"
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
// schemas, and the registry's routes. They are built on first request and cached with
// their ETags by kube-openapi's handlers, and rebuilt (again lazily) when the served
// resources change.
type openAPI struct {
	once sync.Once
	mux  *http.ServeMux
	v2   *handler.OpenAPIService
	v3   *handler3.OpenAPIService

	// built is set when a request built a document: its garbage (several times what is
	// kept) is handed back to the OS then rather than kept as idle RSS.
	built atomic.Bool

	mu  sync.Mutex
	gen int
	gvs map[string]bool // the group versions /openapi/v3 has
}

// prefixMux lets kube-openapi's v3 handler register its per-group-version prefix.
type prefixMux struct{ *http.ServeMux }

func (m prefixMux) HandlePrefix(path string, h http.Handler) { m.Handle(path, h) }

func (s *Server) serveOpenAPI(w http.ResponseWriter, r *http.Request) {
	o := s.openAPIService()
	if gv, ok := strings.CutPrefix(strings.TrimSuffix(r.URL.Path, "/"), "/openapi/v3/"); ok {
		o.mu.Lock()
		known := o.gvs[gv]
		o.mu.Unlock()
		if !known {
			s.writeError(w, r, apierrors.NewNotFound(schema.GroupResource{}, r.URL.Path))
			return
		}
	}
	o.mux.ServeHTTP(w, r)
	if o.built.Swap(false) {
		debug.FreeOSMemory()
	}
}

func (s *Server) openAPIService() *openAPI {
	o := &s.oapi
	o.once.Do(func() {
		o.mux = http.NewServeMux()
		o.v2 = handler.NewOpenAPIServiceLazy(cached.Static[*spec.Swagger](nil, ""))
		o.v2.RegisterOpenAPIVersionedService("/openapi/v2", o.mux)
		o.v3 = handler3.NewOpenAPIService()
		o.v3.RegisterOpenAPIV3VersionedService("/openapi/v3", prefixMux{o.mux})
		o.gvs = map[string]bool{}
		s.refreshOpenAPI()
	})
	return o
}

// refreshOpenAPI drops the built documents: the next request builds them from the
// registry as it is then.
func (s *Server) refreshOpenAPI() {
	o := &s.oapi
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.v2 == nil {
		return // nothing built yet
	}
	o.gen++
	etag := strconv.Itoa(o.gen)
	o.v2.UpdateSpecLazy(cached.Once(cached.Func(func() (*spec.Swagger, string, error) {
		sw, err := s.buildSwagger()
		o.built.Store(true)
		return sw, etag, err
	})))
	seen := map[string]bool{}
	for _, gv := range s.reg.groups() {
		p := gvPath(gv)
		seen[p] = true
		o.v3.UpdateGroupVersionLazy(p, cached.Once(cached.Func(func() (*spec3.OpenAPI, string, error) {
			doc, err := s.buildOpenAPIv3(gv)
			o.built.Store(true)
			return doc, etag, err
		})))
	}
	for p := range o.gvs {
		if !seen[p] {
			o.v3.DeleteGroupVersion(p)
		}
	}
	o.gvs = seen
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
		GetDefinitions:    s.openAPIDefinitions,
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
