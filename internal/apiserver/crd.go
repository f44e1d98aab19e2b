package apiserver

import (
	"context"
	"errors"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/berth-project/berth/internal/storage"
)

// CustomResourceDefinitions: each CRD stored makes the registry serve its custom
// resources, in every served version, through the same generic REST handlers as the
// built-in kinds. The server keeps the registry in step with the stored CRDs by
// watching them (so CRDs written through another server sharing etcd, and those stored
// before a restart, are served too); a CRD created through this server is served at once.

// crdCleanupFinalizer holds a deleted CRD until its custom resources are gone.
const crdCleanupFinalizer = "customresourcecleanup.apiextensions.k8s.io"

// crds is the server's view of the CRDs it serves.
type crds struct {
	once   sync.Once
	mu     sync.Mutex
	served map[string]servedCRD // by CRD name
	gen    int
}

// servedCRD is what a CRD serves, as of which of its generations.
type servedCRD struct {
	gr         schema.GroupResource
	generation int64
}

func (s *Server) crdResource() *resource {
	return s.reg.get("apiextensions.k8s.io", "v1", "customresourcedefinitions")
}

// watchCRDs loads the stored CRDs once (the first request waits for it) and then
// follows their changes until the server closes.
func (s *Server) watchCRDs() {
	s.crd.once.Do(func() {
		res := s.crdResource()
		if res == nil || s.store == nil {
			return
		}
		rev, err := s.syncCRDs(s.ctx, res)
		if err != nil {
			s.log.Error("custom resource definitions: list", "err", err)
		}
		go s.followCRDs(res, rev) // rev 0 after an error: it lists again first
	})
}

// syncCRDs serves every stored CRD and stops serving those no longer stored.
func (s *Server) syncCRDs(ctx context.Context, res *resource) (int64, error) {
	lr, err := s.cacher(res).List(ctx, res.storagePrefix(), storage.ListOptions{})
	if err != nil {
		return 0, err
	}
	stored := map[string]bool{}
	for _, kv := range lr.Items {
		obj, err := s.decodeFromStorage(res, kv)
		if err != nil {
			continue
		}
		crd := obj.(*apiextensionsv1.CustomResourceDefinition)
		stored[crd.Name] = true
		s.crdChanged(crd)
	}
	s.crd.mu.Lock()
	var gone []string
	for name := range s.crd.served {
		if !stored[name] {
			gone = append(gone, name)
		}
	}
	s.crd.mu.Unlock()
	for _, name := range gone {
		s.unserveCRD(name)
	}
	return lr.Revision, nil
}

// followCRDs serves the CRDs' changes after revision rev; 0: after listing them again.
func (s *Server) followCRDs(res *resource, rev int64) {
	for s.ctx.Err() == nil {
		var err error
		if rev == 0 {
			rev, err = s.syncCRDs(s.ctx, res)
		}
		if err == nil {
			var events <-chan storage.Event
			var done func() error
			if events, done, err = s.cacher(res).WatchWithOptions(s.ctx, res.storagePrefix(), rev, storage.WatchOptions{}); err == nil {
				for ev := range events {
					rev = ev.KV.ModRevision
					obj, err := s.decodeFromStorage(res, ev.KV)
					if err != nil {
						continue
					}
					crd := obj.(*apiextensionsv1.CustomResourceDefinition)
					if ev.Type == storage.Deleted {
						s.unserveCRD(crd.Name)
					} else {
						s.crdChanged(crd)
					}
				}
				err = done()
			}
		}
		if s.ctx.Err() != nil {
			return
		}
		s.log.Warn("custom resource definitions: watch ended, listing again", "err", err)
		rev = 0
		select {
		case <-s.ctx.Done():
			return
		case <-time.After(time.Second):
		}
	}
}

// crdChanged serves a CRD as it now is: its resources registered (or, once it is
// deleted, its custom resources removed and then the CRD), its status brought up to date.
func (s *Server) crdChanged(crd *apiextensionsv1.CustomResourceDefinition) {
	if crd.DeletionTimestamp != nil {
		go s.cleanupCRD(crd)
		return
	}
	s.crd.mu.Lock()
	old, ok := s.crd.served[crd.Name]
	if !ok || old.generation != crd.Generation || crd.Generation == 0 {
		s.crd.gen++
		rs, err := customResources(crd, s.crd.gen)
		if err != nil {
			s.crd.mu.Unlock()
			s.log.Error("custom resource definition not served", "name", crd.Name, "err", err)
			return
		}
		gr := schema.GroupResource{Group: crd.Spec.Group, Resource: crd.Spec.Names.Plural}
		if ok && old.gr != gr {
			s.reg.replace(old.gr, nil)
		}
		if s.crd.served == nil {
			s.crd.served = map[string]servedCRD{}
		}
		s.crd.served[crd.Name] = servedCRD{gr: gr, generation: crd.Generation}
		s.reg.replace(gr, rs)
		s.crd.mu.Unlock()
		s.log.Info("custom resource definition served", "name", crd.Name, "generation", crd.Generation)
		s.refreshOpenAPI()
		debug.FreeOSMemory() // building the type converters left many times what they keep
	} else {
		s.crd.mu.Unlock() // a status change only
	}
	if want := crdStatus(crd); !statusEqual(crd.Status, want) {
		s.updateCRDStatus(crd.Name, want)
	}
}

func (s *Server) unserveCRD(name string) {
	s.crd.mu.Lock()
	served, ok := s.crd.served[name]
	delete(s.crd.served, name)
	if ok {
		s.reg.replace(served.gr, nil)
	}
	s.crd.mu.Unlock()
	if ok {
		s.refreshOpenAPI()
	}
}

// cleanupCRD deletes a deleted CRD's custom resources, then lets the CRD go.
func (s *Server) cleanupCRD(crd *apiextensionsv1.CustomResourceDefinition) {
	ctx, cancel := context.WithTimeout(s.ctx, 5*time.Minute)
	defer cancel()
	prefix := "/registry/" + crd.Spec.Group + "/" + crd.Spec.Names.Plural + "/"
	lr, err := s.store.List(ctx, prefix, storage.ListOptions{})
	if err != nil {
		s.log.Error("custom resource cleanup: list", "crd", crd.Name, "err", err)
		return
	}
	for _, kv := range lr.Items {
		if _, err := s.store.Delete(ctx, kv.Key, 0); err != nil && !errors.Is(err, storage.ErrNotFound) {
			s.log.Error("custom resource cleanup: delete", "crd", crd.Name, "key", kv.Key, "err", err)
			return
		}
	}
	s.unserveCRD(crd.Name)
	req := request{gv: apiextensionsv1.SchemeGroupVersion, res: s.crdResource(), name: crd.Name}
	_, _, err = s.storeUpdate(ctx, req, func(obj runtime.Object) (runtime.Object, error) {
		c := obj.(*apiextensionsv1.CustomResourceDefinition)
		var keep []string
		for _, f := range c.Finalizers {
			if f != crdCleanupFinalizer {
				keep = append(keep, f)
			}
		}
		c.Finalizers = keep
		return c, nil
	}, false)
	if err != nil && !apierrors.IsNotFound(err) {
		s.log.Error("custom resource cleanup: finalizer", "crd", crd.Name, "err", err)
	}
}

// crdStatus is the status a served CRD has: its names accepted, established, its
// storage version among the stored ones.
func crdStatus(crd *apiextensionsv1.CustomResourceDefinition) apiextensionsv1.CustomResourceDefinitionStatus {
	st := *crd.Status.DeepCopy()
	st.AcceptedNames = crd.Spec.Names
	setCondition(&st, apiextensionsv1.NamesAccepted, "NoConflicts", "no conflicts found")
	setCondition(&st, apiextensionsv1.Established, "InitialNamesAccepted", "the initial names have been accepted")
	for _, v := range crd.Spec.Versions {
		if v.Storage && !contains(st.StoredVersions, v.Name) {
			st.StoredVersions = append(st.StoredVersions, v.Name)
		}
	}
	return st
}

func setCondition(st *apiextensionsv1.CustomResourceDefinitionStatus, typ apiextensionsv1.CustomResourceDefinitionConditionType, reason, msg string) {
	for i, c := range st.Conditions {
		if c.Type == typ {
			if c.Status != apiextensionsv1.ConditionTrue {
				st.Conditions[i] = apiextensionsv1.CustomResourceDefinitionCondition{Type: typ, Status: apiextensionsv1.ConditionTrue,
					Reason: reason, Message: msg, LastTransitionTime: metav1.Now()}
			}
			return
		}
	}
	st.Conditions = append(st.Conditions, apiextensionsv1.CustomResourceDefinitionCondition{Type: typ, Status: apiextensionsv1.ConditionTrue,
		Reason: reason, Message: msg, LastTransitionTime: metav1.Now()})
}

func statusEqual(a, b apiextensionsv1.CustomResourceDefinitionStatus) bool {
	if len(a.Conditions) != len(b.Conditions) || strings.Join(a.StoredVersions, ",") != strings.Join(b.StoredVersions, ",") {
		return false
	}
	for i := range a.Conditions {
		if a.Conditions[i].Type != b.Conditions[i].Type || a.Conditions[i].Status != b.Conditions[i].Status {
			return false
		}
	}
	an, bn := a.AcceptedNames, b.AcceptedNames
	return an.Plural == bn.Plural && an.Singular == bn.Singular && an.Kind == bn.Kind && an.ListKind == bn.ListKind &&
		strings.Join(an.ShortNames, ",") == strings.Join(bn.ShortNames, ",") && strings.Join(an.Categories, ",") == strings.Join(bn.Categories, ",")
}

func (s *Server) updateCRDStatus(name string, st apiextensionsv1.CustomResourceDefinitionStatus) {
	req := request{gv: apiextensionsv1.SchemeGroupVersion, res: s.crdResource(), name: name, sub: "status"}
	_, _, err := s.storeUpdate(s.ctx, req, func(obj runtime.Object) (runtime.Object, error) {
		c := obj.(*apiextensionsv1.CustomResourceDefinition)
		c.Status = st
		return c, nil
	}, false)
	if err != nil && !apierrors.IsNotFound(err) {
		s.log.Error("custom resource definition status", "name", name, "err", err)
	}
}

// prepareCRD readies a new CRD: the cleanup finalizer, and the status it will have
// once served (set now so that clients that wait for Established need not).
func prepareCRD(crd *apiextensionsv1.CustomResourceDefinition) {
	if !contains(crd.Finalizers, crdCleanupFinalizer) {
		crd.Finalizers = append(crd.Finalizers, crdCleanupFinalizer)
	}
	crd.Status = crdStatus(crd)
}

// validateCRD refuses the CRDs upstream refuses most often: a name that is not
// PLURAL.GROUP, no storage version or more than one, a schema that is not structural.
func validateCRD(crd *apiextensionsv1.CustomResourceDefinition) field.ErrorList {
	var errs field.ErrorList
	spec := field.NewPath("spec")
	if want := crd.Spec.Names.Plural + "." + crd.Spec.Group; crd.Name != want {
		errs = append(errs, field.Invalid(field.NewPath("metadata", "name"), crd.Name, "must be spec.names.plural+\".\"+spec.group"))
	}
	if crd.Spec.Group == "" || !strings.Contains(crd.Spec.Group, ".") {
		errs = append(errs, field.Invalid(spec.Child("group"), crd.Spec.Group, "should be a domain with at least one dot"))
	}
	if crd.Spec.Names.Kind == "" {
		errs = append(errs, field.Required(spec.Child("names", "kind"), ""))
	}
	if crd.Spec.Scope != apiextensionsv1.NamespaceScoped && crd.Spec.Scope != apiextensionsv1.ClusterScoped {
		errs = append(errs, field.NotSupported(spec.Child("scope"), crd.Spec.Scope, []string{string(apiextensionsv1.ClusterScoped), string(apiextensionsv1.NamespaceScoped)}))
	}
	storageVersions := 0
	for _, v := range crd.Spec.Versions {
		if v.Storage {
			storageVersions++
		}
	}
	if len(crd.Spec.Versions) == 0 {
		errs = append(errs, field.Required(spec.Child("versions"), "must have exactly one version marked as storage version"))
	} else if storageVersions != 1 {
		errs = append(errs, field.Invalid(spec.Child("versions"), storageVersions, "must have exactly one version marked as storage version"))
	}
	if len(errs) == 0 {
		if _, err := customResources(crd, 0); err != nil {
			errs = append(errs, field.Invalid(spec.Child("versions"), "", err.Error()))
		}
	}
	return errs
}
