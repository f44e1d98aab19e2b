package apiserver

import (
	"fmt"
	"net/http"
	"runtime/debug"
	"strings"
	"sync"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/managedfields"
	"k8s.io/kube-openapi/pkg/builder3"
	"sigs.k8s.io/structured-merge-diff/v6/fieldpath"
)

// Managed fields: every write records which manager set which fields
// (metadata.managedFields), and server-side apply merges by them, with conflicts
// between managers. apimachinery's FieldManager does the work; it needs a
// TypeConverter, made from the same generated OpenAPI models the server serves.
type fieldManagers struct {
	once    sync.Once
	builtin managedfields.TypeConverter
	err     error

	mu sync.Mutex
	by map[fieldManagerKey]*managedfields.FieldManager
}

type fieldManagerKey struct {
	gvr schema.GroupVersionResource
	sub string
	gen int // a custom resource's schema generation
}

// builtinTypeConverter parses the models of every built-in kind served, once.
func (s *Server) builtinTypeConverter() (managedfields.TypeConverter, error) {
	m := &s.managed
	m.once.Do(func() {
		var names []string
		for _, r := range s.reg.all() {
			if r.custom == nil {
				names = append(names, string(modelName(r, false)))
			}
		}
		models, err := builder3.BuildOpenAPIDefinitionsForResources(s.openAPIv3Config(), names...)
		if err != nil {
			m.err = fmt.Errorf("openapi models: %w", err)
			return
		}
		m.builtin, m.err = managedfields.NewTypeConverter(models, false)
		debug.FreeOSMemory() // the models' garbage is many times what the converter keeps
	})
	return m.builtin, m.err
}

// fieldManager is the FieldManager of a resource (or its status or scale).
func (s *Server) fieldManager(res *resource, sub string) (*managedfields.FieldManager, error) {
	key := fieldManagerKey{gvr: res.gvr, sub: sub}
	if res.custom != nil {
		key.gen = res.custom.generation
	}
	m := &s.managed
	m.mu.Lock()
	defer m.mu.Unlock()
	if fm, ok := m.by[key]; ok {
		return fm, nil
	}
	// Writes to a resource leave its status to /status, and the other way round.
	reset := map[fieldpath.APIVersion]*fieldpath.Set{}
	version := fieldpath.APIVersion(res.gvr.GroupVersion().String())
	if contains(res.subresources, "status") {
		switch sub {
		case "":
			reset[version] = fieldpath.NewSet(fieldpath.MakePathOrDie("status"))
		case "status":
			reset[version] = fieldpath.NewSet(fieldpath.MakePathOrDie("spec"))
		}
	}
	filters := fieldpath.NewExcludeFilterSetMap(reset)
	var fm *managedfields.FieldManager
	var err error
	if res.custom != nil {
		fm, err = managedfields.NewDefaultCRDFieldManager(res.custom.typeConverter, customConverter{}, customConverter{}, customConverter{},
			res.gvk(), res.gvr.GroupVersion(), sub, filters)
	} else {
		var tc managedfields.TypeConverter
		if tc, err = s.builtinTypeConverter(); err == nil {
			fm, err = managedfields.NewDefaultFieldManager(tc, scheme, scheme, scheme, res.gvk(), res.gvr.GroupVersion(), sub, filters)
		}
	}
	if err != nil {
		return nil, apierrors.NewInternalError(fmt.Errorf("field manager of %s: %w", res.gvk(), err))
	}
	if m.by == nil {
		m.by = map[fieldManagerKey]*managedfields.FieldManager{}
	}
	for k := range m.by {
		if k.gvr == key.gvr && k.gen != key.gen {
			delete(m.by, k) // made for a CRD as it was
		}
	}
	m.by[key] = fm
	return fm, nil
}

// managerOf names who writes: ?fieldManager, or what the User-Agent names before its
// first "/" (as upstream: "kubectl", "kube-controller-manager").
func managerOf(r *http.Request) string {
	if m := r.URL.Query().Get("fieldManager"); m != "" {
		return m
	}
	ua, _, _ := strings.Cut(r.Header.Get("User-Agent"), "/")
	if len(ua) > 128 {
		ua = ua[:128]
	}
	return ua
}

// trackUpdate records in obj's managed fields what the request's manager changed from
// live (nil: a create). The write goes on if the tracking fails, as upstream's does.
func (s *Server) trackUpdate(r *http.Request, res *resource, sub string, live, obj runtime.Object) (out runtime.Object) {
	fm, err := s.fieldManager(res, sub)
	if err != nil {
		s.log.Error("managed fields", "kind", res.kind, "err", err)
		return obj
	}
	manager := managerOf(r)
	if live == nil {
		d, memo := s.createdFields.digest(res, sub, manager, obj)
		if entries, ok := s.createdFields.get(d); memo && ok {
			if acc, err := meta.Accessor(obj); err == nil {
				acc.SetManagedFields(entries)
				return obj
			}
		}
		if memo {
			defer func() {
				if acc, err := meta.Accessor(out); err == nil {
					s.createdFields.put(d, acc.GetManagedFields())
				}
			}()
		}
		live = res.new()
		if acc, err := meta.Accessor(live); err == nil {
			acc.SetManagedFields(nil)
		}
		live.GetObjectKind().SetGroupVersionKind(res.gvk())
	}
	obj.GetObjectKind().SetGroupVersionKind(res.gvk())
	return fm.UpdateNoErrors(live, obj, manager)
}

// customConverter converts custom resources between their versions, which share one
// schema here: only apiVersion changes (upstream's "None" conversion strategy).
type customConverter struct{}

func (customConverter) Convert(in, out, context any) error {
	return fmt.Errorf("custom resources convert only with ConvertToVersion")
}

func (customConverter) ConvertToVersion(in runtime.Object, gv runtime.GroupVersioner) (runtime.Object, error) {
	kind := in.GetObjectKind().GroupVersionKind()
	target, ok := gv.KindForGroupVersionKinds([]schema.GroupVersionKind{kind})
	if !ok {
		return nil, fmt.Errorf("%s cannot be converted to %v", kind, gv)
	}
	out := in.DeepCopyObject()
	out.GetObjectKind().SetGroupVersionKind(target)
	return out, nil
}

func (customConverter) ConvertFieldLabel(gvk schema.GroupVersionKind, label, value string) (string, string, error) {
	return label, value, nil
}

func (customConverter) Default(runtime.Object) {}

func (customConverter) New(kind schema.GroupVersionKind) (runtime.Object, error) {
	u := newUnstructured(kind)
	return u, nil
}
