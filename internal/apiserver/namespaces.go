package apiserver

import (
	"context"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/berth-project/berth/internal/storage"
)

// Bootstrap creates the namespaces every cluster has (default, kube-system,
// kube-public, kube-node-lease), each with its default ServiceAccount. It is
// idempotent.
func (s *Server) Bootstrap(ctx context.Context) error {
	nsRes := s.reg.get("", "v1", "namespaces")
	for _, name := range []string{metav1.NamespaceDefault, metav1.NamespaceSystem, metav1.NamespacePublic, corev1.NamespaceNodeLease} {
		ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{corev1.LabelMetadataName: name}}}
		if err := s.createInternal(ctx, nsRes, ns); err != nil && !apierrors.IsAlreadyExists(err) {
			return err
		}
		s.afterCreate(nsRes, ns)
	}
	for _, obj := range defaultRBAC() {
		res := s.reg.get("rbac.authorization.k8s.io", "v1", "clusterroles")
		if _, ok := obj.(*rbacv1.ClusterRoleBinding); ok {
			res = s.reg.get("rbac.authorization.k8s.io", "v1", "clusterrolebindings")
		}
		if err := s.createInternal(ctx, res, obj); err != nil && !apierrors.IsAlreadyExists(err) {
			return err
		}
	}
	return s.kubernetesService(ctx)
}

// createInternal stores an object the server makes itself.
func (s *Server) createInternal(ctx context.Context, res *resource, obj runtime.Object) error {
	acc, _ := meta.Accessor(obj)
	acc.SetUID(typesUID(newUID()))
	acc.SetCreationTimestamp(metav1.Now())
	prepareForCreate(res, obj)
	defaultObject(obj)
	data, err := s.encodeForStorage(res, obj)
	if err != nil {
		return err
	}
	rev, err := s.store.Create(ctx, res.key(acc.GetNamespace(), acc.GetName()), data)
	if err != nil {
		return storageError(err, res, acc.GetName())
	}
	acc.SetResourceVersion(strconv.FormatInt(rev, 10))
	return nil
}

// afterCreate does what creating an object implies: a new namespace gets its default
// ServiceAccount.
func (s *Server) afterCreate(res *resource, obj runtime.Object) {
	if crd, ok := obj.(*apiextensionsv1.CustomResourceDefinition); ok {
		s.crdChanged(crd) // served at once, not when the watch sees it
		return
	}
	ns, ok := obj.(*corev1.Namespace)
	if !ok {
		return
	}
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default", Namespace: ns.Name}}
	if err := s.createInternal(context.Background(), s.reg.get("", "v1", "serviceaccounts"), sa); err != nil && !apierrors.IsAlreadyExists(err) {
		s.log.Error("default service account", "namespace", ns.Name, "err", err)
	}
}

// finalizeNamespace empties a namespace being deleted, then lets it go: every
// namespaced object in it is deleted (finalizers of those objects are their owners'
// business), and once its pods are gone (stopped by their kubelets within their grace
// periods), the namespace's "kubernetes" finalizer is removed.
func (s *Server) finalizeNamespace(name string) {
	ctx, cancel := context.WithTimeout(s.ctx, 5*time.Minute)
	defer cancel()
	for _, res := range s.reg.all() {
		if !res.namespaced || (res.gvr.Group == "events.k8s.io") {
			continue
		}
		lr, err := s.store.List(ctx, res.storagePrefix()+name+"/", storage.ListOptions{})
		if err != nil {
			s.log.Error("namespace cleanup: list", "namespace", name, "resource", res.gvr.Resource, "err", err)
			continue
		}
		for _, kv := range lr.Items {
			obj, err := s.decodeFromStorage(res, kv)
			if err != nil {
				continue
			}
			acc, _ := meta.Accessor(obj)
			req := request{gv: res.gvr.GroupVersion(), res: res, namespace: name, name: acc.GetName()}
			if _, err := s.deleteObject(ctx, req, metav1.DeleteOptions{}, false); err != nil && !apierrors.IsNotFound(err) {
				s.log.Error("namespace cleanup: delete", "namespace", name, "object", kv.Key, "err", err)
			}
		}
	}
	s.waitPodsGone(ctx, name)
	nsRes := s.reg.get("", "v1", "namespaces")
	req := request{gv: schema.GroupVersion{Version: "v1"}, res: nsRes, name: name}
	_, _, err := s.storeUpdate(ctx, req, func(obj runtime.Object) (runtime.Object, error) {
		ns := obj.(*corev1.Namespace)
		var keep []corev1.FinalizerName
		for _, f := range ns.Spec.Finalizers {
			if f != corev1.FinalizerKubernetes {
				keep = append(keep, f)
			}
		}
		ns.Spec.Finalizers = keep
		var metaKeep []string
		for _, f := range ns.Finalizers {
			if f != "kubernetes" {
				metaKeep = append(metaKeep, f)
			}
		}
		ns.Finalizers = metaKeep
		ns.ResourceVersion = ""
		return ns, nil
	}, false)
	if err != nil && !apierrors.IsNotFound(err) {
		s.log.Error("namespace cleanup: finalize", "namespace", name, "err", err)
	}
}

// waitPodsGone waits, within ctx, until the namespace has no pods left: as upstream's
// namespace controller, a namespace stays Terminating while pods on nodes are stopping.
func (s *Server) waitPodsGone(ctx context.Context, ns string) {
	podRes := s.reg.get("", "v1", "pods")
	for {
		lr, err := s.cacher(podRes).List(ctx, podRes.storagePrefix()+ns+"/", storage.ListOptions{})
		if err == nil && len(lr.Items) == 0 {
			return
		}
		select {
		case <-ctx.Done():
			s.log.Warn("namespace cleanup: pods still there", "namespace", ns)
			return
		case <-time.After(time.Second): // the kubelets delete them within their grace periods
		}
	}
}
