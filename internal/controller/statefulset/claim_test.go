package statefulset

import (
	"context"
	"fmt"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"

	"github.com/berth-project/berth/internal/controller/history"
	"github.com/berth-project/berth/internal/controller/ownerref"
)

// leftovers is what a set deleted with --cascade=orphan leaves: its pods web-0 and
// web-1, running and ready, and its revision, none with an owner.
func leftovers(t *testing.T, set *appsv1.StatefulSet) []runtime.Object {
	t.Helper()
	data, err := history.Patch(&set.Spec.Template)
	if err != nil {
		t.Fatal(err)
	}
	cr := &appsv1.ControllerRevision{
		ObjectMeta: metav1.ObjectMeta{Name: "web-old", Namespace: "default", Labels: map[string]string{"app": "web", history.HashLabel: "old"}},
		Data:       runtime.RawExtension{Raw: data}, Revision: 1,
	}
	objs := []runtime.Object{cr}
	for i := range 2 {
		p := newPod(set, &set.Spec.Template, cr.Name, i)
		p.OwnerReferences = nil
		p.UID = types.UID(fmt.Sprintf("pod-%d", i))
		p.Status.Phase = corev1.PodRunning
		p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}
		objs = append(objs, p)
	}
	return objs
}

// owners maps each pod to the uid of its controller ("" for none).
func (f *fixture) owners() map[string]string {
	l, _ := f.client.CoreV1().Pods("default").List(context.Background(), metav1.ListOptions{})
	out := map[string]string{}
	for _, p := range l.Items {
		out[p.Name] = ""
		if ref := metav1.GetControllerOf(&p); ref != nil {
			out[p.Name] = string(ref.UID)
		}
	}
	return out
}

func TestOrphanedPodsAndRevisionAreAdopted(t *testing.T) {
	set := statefulSet(2, appsv1.OrderedReadyPodManagement)
	other := &appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Name: "rs", Namespace: "default", UID: "rs-uid"}}
	theirs := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web-5", Namespace: "default", Labels: map[string]string{"app": "web"},
		OwnerReferences: []metav1.OwnerReference{ownerref.ControllerRef(other, appsv1.SchemeGroupVersion.WithKind("ReplicaSet"))}}}
	stray := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web-x", Namespace: "default", Labels: map[string]string{"app": "web"}}}
	misnamed := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web-01", Namespace: "default", Labels: map[string]string{"app": "web"},
		OwnerReferences: []metav1.OwnerReference{ownerref.ControllerRef(set, Kind)}}}
	f := newFixture(t, append(leftovers(t, set), set, theirs, stray, misnamed)...)
	f.sync()

	want := map[string]string{"web-0": "set-uid", "web-1": "set-uid", "web-5": "rs-uid", "web-x": "", "web-01": ""}
	if got := f.owners(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("pod controllers %v, want %v (members adopted, a stranger ignored, a misnamed pod released)", got, want)
	}
	for i, name := range []string{"web-0", "web-1"} {
		p, _ := f.client.CoreV1().Pods("default").Get(context.Background(), name, metav1.GetOptions{})
		if p.UID != types.UID(fmt.Sprintf("pod-%d", i)) {
			t.Fatalf("%s was replaced (uid %s)", name, p.UID)
		}
	}
	cr, err := f.client.AppsV1().ControllerRevisions("default").Get(context.Background(), "web-old", metav1.GetOptions{})
	if err != nil || !metav1.IsControlledBy(cr, set) {
		t.Fatalf("revision not adopted: %v %v", err, cr)
	}
	crs, _ := f.client.AppsV1().ControllerRevisions("default").List(context.Background(), metav1.ListOptions{})
	if len(crs.Items) != 1 {
		t.Fatalf("%d revisions, want the adopted one only", len(crs.Items))
	}
	st := f.set().Status
	if st.Replicas != 2 || st.ReadyReplicas != 2 || st.UpdateRevision != "web-old" || st.UpdatedReplicas != 2 {
		t.Fatalf("status %+v: the adopted pods are the set's and up to date", st)
	}
	f.sync()
	if got := fmt.Sprint(f.pods()); got != "[web-01@old web-0@new web-1@new web-5@old web-x@old]" {
		t.Fatalf("pods after another sync %s: nothing to create or delete", got)
	}
}

func TestNoAdoptionForASetThatWasReplaced(t *testing.T) {
	set := statefulSet(2, appsv1.OrderedReadyPodManagement)
	f := newFixture(t, append(leftovers(t, set), set)...)
	stale := set.DeepCopy()
	stale.UID = "gone-uid"
	f.inf.Apps().V1().StatefulSets().Informer().GetIndexer().Update(stale)
	err := f.c.sync(context.Background(), "default/web")
	if err == nil || !strings.Contains(err.Error(), "is gone") {
		t.Fatalf("sync of a stale set: %v, want the recheck's refusal", err)
	}
	if got := f.owners(); got["web-0"] != "" || got["web-1"] != "" {
		t.Fatalf("pods adopted by a set that is gone: %v", got)
	}
}

func TestRelabelledPodIsReleasedAndReplacedOnceItGoes(t *testing.T) {
	f := newFixture(t, statefulSet(2, appsv1.ParallelPodManagement))
	f.sync()
	f.ready()
	f.sync()
	ctx := context.Background()
	p, _ := f.client.CoreV1().Pods("default").Get(ctx, "web-1", metav1.GetOptions{})
	p.Labels["app"] = "other"
	p.UID = "relabelled"
	f.client.CoreV1().Pods("default").Update(ctx, p, metav1.UpdateOptions{})
	f.reload()

	err := f.c.sync(ctx, "default/web")
	if err == nil || !strings.Contains(err.Error(), "does not own it") {
		t.Fatalf("sync: %v, want the name web-1 reported taken", err)
	}
	f.reload()
	if got := f.owners(); got["web-0"] != "set-uid" || got["web-1"] != "" {
		t.Fatalf("pod controllers %v: web-1 must be released", got)
	}
	if st := f.set().Status; st.Replicas != 1 || st.ReadyReplicas != 1 {
		t.Fatalf("status %+v: the released pod no longer counts", st)
	}

	f.client.CoreV1().Pods("default").Delete(ctx, "web-1", metav1.DeleteOptions{})
	f.reload()
	f.sync()
	p, err = f.client.CoreV1().Pods("default").Get(ctx, "web-1", metav1.GetOptions{})
	if err != nil || p.UID == "relabelled" || !metav1.IsControlledBy(p, f.set()) || p.Labels["app"] != "web" {
		t.Fatalf("web-1 not replaced: %v %+v", err, p)
	}
}

func TestPodEventsQueueTheSetsThatMayClaimThem(t *testing.T) {
	set := statefulSet(2, appsv1.OrderedReadyPodManagement)
	pod := func(name, app string, ctl types.UID) *corev1.Pod {
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", ResourceVersion: "2", Labels: map[string]string{"app": app}}}
		if ctl != "" {
			ref := ownerref.ControllerRef(set, Kind)
			ref.UID = ctl
			p.OwnerReferences = []metav1.OwnerReference{ref}
		}
		return p
	}
	relabelled := pod("web-1", "web", "")
	relabelled.ResourceVersion = "1"
	for _, tc := range []struct {
		name     string
		old, cur *corev1.Pod
		deleted  bool
		queued   bool
	}{
		{name: "an orphan its selector matches appears", cur: pod("web-0", "web", ""), queued: true},
		{name: "an orphan it does not match appears", cur: pod("web-0", "db", ""), queued: false},
		{name: "an orphan is relabelled to match", old: pod("web-1", "db", ""), cur: func() *corev1.Pod { p := pod("web-1", "web", ""); p.ResourceVersion = "3"; return p }(), queued: true},
		{name: "a resync of an orphan", old: pod("web-1", "web", ""), cur: pod("web-1", "web", ""), queued: false},
		{name: "its pod is released", old: pod("web-1", "web", "set-uid"), cur: func() *corev1.Pod { p := pod("web-1", "other", ""); p.ResourceVersion = "3"; return p }(), queued: true},
		{name: "a deleted orphan had a member's name", cur: pod("web-1", "other", ""), deleted: true, queued: true},
		{name: "a deleted orphan had another name", cur: pod("db-1", "other", ""), deleted: true, queued: false},
		{name: "a pod of an earlier set of the same name changes", cur: pod("web-0", "web", "gone-uid"), queued: false},
		{name: "its own pod changes", old: relabelled, cur: pod("web-1", "web", "set-uid"), queued: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, set)
			var old any
			if tc.old != nil {
				old = tc.old
			}
			f.c.podChanged(old, tc.cur, tc.deleted)
			if got := f.c.queue.Len() == 1; got != tc.queued {
				t.Fatalf("set queued: %v, want %v", got, tc.queued)
			}
		})
	}
}
