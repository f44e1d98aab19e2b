package gc

import (
	"context"
	"encoding/json"
	"log/slog"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic/dynamicinformer"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	"k8s.io/client-go/kubernetes/scheme"
	core "k8s.io/client-go/testing"
	"k8s.io/utils/ptr"
)

var (
	podsGVR        = corev1.SchemeGroupVersion.WithResource("pods")
	replicaSetsGVR = appsv1.SchemeGroupVersion.WithResource("replicasets")
	deploymentsGVR = appsv1.SchemeGroupVersion.WithResource("deployments")
)

type fixture struct {
	t      *testing.T
	client *dynamicfake.FakeDynamicClient
	inf    dynamicinformer.DynamicSharedInformerFactory
	c      *Collector
}

// newFixture builds a collector whose API server and caches hold objs.
func newFixture(t *testing.T, objs ...runtime.Object) *fixture {
	f := &fixture{t: t, client: dynamicfake.NewSimpleDynamicClient(scheme.Scheme, objs...)}
	f.c = New(f.client, nil, nil, slog.New(slog.DiscardHandler))
	mapper := meta.NewDefaultRESTMapper(nil)
	mapper.Add(corev1.SchemeGroupVersion.WithKind("Pod"), meta.RESTScopeNamespace)
	mapper.Add(appsv1.SchemeGroupVersion.WithKind("ReplicaSet"), meta.RESTScopeNamespace)
	mapper.Add(appsv1.SchemeGroupVersion.WithKind("Deployment"), meta.RESTScopeNamespace)
	f.c.mapper = mapper
	f.inf = dynamicinformer.NewDynamicSharedInformerFactory(f.client, 0)
	for _, gvr := range []schema.GroupVersionResource{podsGVR, replicaSetsGVR, deploymentsGVR} {
		f.c.addMonitorLocked(gvr, f.inf.ForResource(gvr).Informer())
	}
	for _, o := range objs {
		f.cache(o)
	}
	f.client.ClearActions()
	return f
}

func gvrOf(o runtime.Object) schema.GroupVersionResource {
	switch o.(type) {
	case *corev1.Pod:
		return podsGVR
	case *appsv1.ReplicaSet:
		return replicaSetsGVR
	}
	return deploymentsGVR
}

func (f *fixture) cache(o runtime.Object) {
	u, err := runtime.DefaultUnstructuredConverter.ToUnstructured(o)
	if err != nil {
		f.t.Fatal(err)
	}
	f.inf.ForResource(gvrOf(o)).Informer().GetIndexer().Add(&unstructured.Unstructured{Object: u})
}

// remove deletes o from the API server and the caches, as a completed deletion would.
func (f *fixture) remove(o runtime.Object) {
	m, _ := meta.Accessor(o)
	f.client.Resource(gvrOf(o)).Namespace(m.GetNamespace()).Delete(context.Background(), m.GetName(), metav1.DeleteOptions{})
	u, _ := runtime.DefaultUnstructuredConverter.ToUnstructured(o)
	f.inf.ForResource(gvrOf(o)).Informer().GetIndexer().Delete(&unstructured.Unstructured{Object: u})
}

func refOf(o runtime.Object) ref {
	m, _ := meta.Accessor(o)
	return ref{gvr: gvrOf(o), namespace: m.GetNamespace(), name: m.GetName(), uid: m.GetUID()}
}

func (f *fixture) attemptToDelete(o runtime.Object) {
	f.t.Helper()
	if err := f.c.attemptToDelete(context.Background(), refOf(o)); err != nil {
		f.t.Fatal(err)
	}
}

// writes returns the delete and patch actions, as "verb resource/name".
func (f *fixture) writes() []core.Action {
	var out []core.Action
	for _, a := range f.client.Actions() {
		if a.GetVerb() == "delete" || a.GetVerb() == "patch" {
			out = append(out, a)
		}
	}
	return out
}

func objMeta(name string, owners ...metav1.Object) metav1.ObjectMeta {
	m := metav1.ObjectMeta{Name: name, Namespace: "default", UID: types.UID(name + "-uid")}
	for _, o := range owners {
		kind := "ReplicaSet"
		if _, ok := o.(*appsv1.Deployment); ok {
			kind = "Deployment"
		}
		m.OwnerReferences = append(m.OwnerReferences, metav1.OwnerReference{
			APIVersion: "apps/v1", Kind: kind, Name: o.GetName(), UID: o.GetUID(), Controller: ptr.To(true), BlockOwnerDeletion: ptr.To(true)})
	}
	return m
}

func deploy(name string) *appsv1.Deployment { return &appsv1.Deployment{ObjectMeta: objMeta(name)} }

func replicaSet(name string, owners ...metav1.Object) *appsv1.ReplicaSet {
	return &appsv1.ReplicaSet{ObjectMeta: objMeta(name, owners...)}
}

func pod(name string, owners ...metav1.Object) *corev1.Pod {
	return &corev1.Pod{ObjectMeta: objMeta(name, owners...)}
}

func deleting(m metav1.Object, finalizer string) {
	now := metav1.NewTime(time.Now())
	m.SetDeletionTimestamp(&now)
	m.SetFinalizers([]string{finalizer})
}

func TestDependentOfAGoneOwnerIsDeletedInTheBackground(t *testing.T) {
	rs := replicaSet("web") // not stored: deleted already
	p := pod("web-1", rs)
	f := newFixture(t, p)
	f.attemptToDelete(p)
	w := f.writes()
	if len(w) != 1 || w[0].GetVerb() != "delete" {
		t.Fatalf("writes %v, want one delete", w)
	}
	d := w[0].(core.DeleteActionImpl)
	if d.Name != "web-1" || *d.DeleteOptions.PropagationPolicy != metav1.DeletePropagationBackground || *d.DeleteOptions.Preconditions.UID != p.UID {
		t.Fatalf("delete %s with %+v", d.Name, d.DeleteOptions)
	}
}

func TestDependentOfALiveOwnerStays(t *testing.T) {
	rs := replicaSet("web")
	p := pod("web-1", rs)
	f := newFixture(t, rs, p)
	f.attemptToDelete(p)
	if w := f.writes(); len(w) != 0 {
		t.Fatalf("writes %v, want none", w)
	}
}

func TestOnlyTheReferenceToAGoneOwnerIsRemovedWhenAnotherLives(t *testing.T) {
	live, gone := replicaSet("live"), replicaSet("gone")
	p := pod("web-1", live, gone)
	f := newFixture(t, live, p)
	f.attemptToDelete(p)
	w := f.writes()
	if len(w) != 1 || w[0].GetVerb() != "patch" {
		t.Fatalf("writes %v, want one patch", w)
	}
	var patch struct {
		Metadata struct {
			OwnerReferences []metav1.OwnerReference `json:"ownerReferences"`
		} `json:"metadata"`
	}
	json.Unmarshal(w[0].(core.PatchAction).GetPatch(), &patch)
	if refs := patch.Metadata.OwnerReferences; len(refs) != 1 || refs[0].UID != live.UID {
		t.Fatalf("patch %s", w[0].(core.PatchAction).GetPatch())
	}
}

func TestForegroundDeletionDeletesDependentsFirstThenReleasesTheOwner(t *testing.T) {
	d := deploy("web")
	deleting(d, metav1.FinalizerDeleteDependents)
	rs := replicaSet("web-abc", d)
	p := pod("web-abc-1", rs)
	f := newFixture(t, d, rs, p)

	// The owner waits: its blocking dependent is queued, the finalizer stays.
	f.attemptToDelete(d)
	if w := f.writes(); len(w) != 0 || f.c.deletes.Len() != 1 {
		t.Fatalf("writes %v, %d queued; want none and the replica set", w, f.c.deletes.Len())
	}
	// The replica set has pods of its own: it goes in the foreground too.
	f.attemptToDelete(rs)
	w := f.writes()
	if len(w) != 1 || w[0].(core.DeleteActionImpl).Name != "web-abc" || *w[0].(core.DeleteActionImpl).DeleteOptions.PropagationPolicy != metav1.DeletePropagationForeground {
		t.Fatalf("writes %v, want the replica set deleted in the foreground", w)
	}
	// Once the dependents are gone, the owner's finalizer is removed.
	f.remove(p)
	f.remove(rs)
	f.client.ClearActions()
	f.attemptToDelete(d)
	w = f.writes()
	if len(w) != 1 || w[0].GetVerb() != "patch" || string(w[0].(core.PatchAction).GetPatch()) != `{"metadata":{"finalizers":[],"resourceVersion":""}}` {
		t.Fatalf("writes %v", w)
	}
}

func TestOrphanPolicyRemovesReferencesThenTheFinalizer(t *testing.T) {
	d := deploy("web")
	deleting(d, metav1.FinalizerOrphanDependents)
	rs := replicaSet("web-abc", d)
	f := newFixture(t, d, rs)
	if err := f.c.attemptToOrphan(context.Background(), refOf(d)); err != nil {
		t.Fatal(err)
	}
	w := f.writes()
	if len(w) != 2 {
		t.Fatalf("writes %v, want two patches", w)
	}
	if a := w[0].(core.PatchAction); a.GetName() != "web-abc" || string(a.GetPatch()) != `{"metadata":{"ownerReferences":[],"resourceVersion":""}}` {
		t.Fatalf("first patch %s %s", a.GetName(), a.GetPatch())
	}
	if a := w[1].(core.PatchAction); a.GetName() != "web" || string(a.GetPatch()) != `{"metadata":{"finalizers":[],"resourceVersion":""}}` {
		t.Fatalf("second patch %s %s", a.GetName(), a.GetPatch())
	}
	// The orphaned replica set now has no owner and stays.
	got, _ := f.client.Resource(replicaSetsGVR).Namespace("default").Get(context.Background(), "web-abc", metav1.GetOptions{})
	if len(got.GetOwnerReferences()) != 0 {
		t.Fatalf("replica set still owned: %v", got.GetOwnerReferences())
	}
}

func TestDeletedOwnerQueuesItsDependents(t *testing.T) {
	rs := replicaSet("web")
	p1, p2 := pod("web-1", rs), pod("web-2", rs)
	other := pod("other")
	f := newFixture(t, rs, p1, p2, other)
	f.c.deleted(replicaSetsGVR, f.inf.ForResource(replicaSetsGVR).Informer().GetIndexer().List()[0])
	if n := f.c.deletes.Len(); n != 2 {
		t.Fatalf("%d queued, want the replica set's 2 pods", n)
	}
}
