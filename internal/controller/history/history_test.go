package history

import (
	"context"
	"errors"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	appslisters "k8s.io/client-go/listers/apps/v1"
	"k8s.io/utils/ptr"

	"github.com/berth-project/berth/internal/controller/ownerref"
)

var kind = appsv1.SchemeGroupVersion.WithKind("StatefulSet")

func owner() *appsv1.StatefulSet {
	return &appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default", UID: "set-uid"}}
}

func template(image string) *corev1.PodTemplateSpec {
	return &corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "web"}},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: image}}},
	}
}

// revision is a revision named name, numbered rev, holding the template of image,
// controlled by ctl (nil: an orphan).
func revision(t *testing.T, name string, rev int64, image string, ctl metav1.Object) *appsv1.ControllerRevision {
	t.Helper()
	data, err := Patch(template(image))
	if err != nil {
		t.Fatal(err)
	}
	cr := &appsv1.ControllerRevision{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", Labels: map[string]string{"app": "web", HashLabel: name}},
		Data:       runtime.RawExtension{Raw: data}, Revision: rev,
	}
	if ctl != nil {
		cr.OwnerReferences = []metav1.OwnerReference{ownerref.ControllerRef(ctl, kind)}
	}
	return cr
}

func lister(t *testing.T, client *fake.Clientset) appslisters.ControllerRevisionLister {
	t.Helper()
	inf := informers.NewSharedInformerFactory(client, 0).Apps().V1().ControllerRevisions()
	l, err := client.AppsV1().ControllerRevisions("default").List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range l.Items {
		inf.Informer().GetIndexer().Add(&l.Items[i])
	}
	return inf.Lister()
}

// numbers maps each stored revision's name to its number.
func numbers(t *testing.T, client *fake.Clientset) map[string]int64 {
	t.Helper()
	l, err := client.AppsV1().ControllerRevisions("default").List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int64{}
	for _, cr := range l.Items {
		out[cr.Name] = cr.Revision
	}
	return out
}

func TestSyncUsesTheNewestOfEqualRevisions(t *testing.T) {
	set := owner()
	for _, tc := range []struct {
		name  string
		crs   []*appsv1.ControllerRevision
		want  string
		after map[string]int64
	}{{
		name: "the newest revision is equal: kept as it is",
		crs:  []*appsv1.ControllerRevision{revision(t, "a1", 1, "nginx:1", set), revision(t, "b", 2, "nginx:2", set), revision(t, "a3", 3, "nginx:1", set)},
		want: "a3", after: map[string]int64{"a1": 1, "b": 2, "a3": 3},
	}, {
		name: "an older template came back: its newest revision is renumbered",
		crs:  []*appsv1.ControllerRevision{revision(t, "a1", 1, "nginx:1", set), revision(t, "a2", 2, "nginx:1", set), revision(t, "b", 3, "nginx:2", set)},
		want: "a2", after: map[string]int64{"a1": 1, "a2": 4, "b": 3},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			var objs []runtime.Object
			for _, cr := range tc.crs {
				objs = append(objs, cr)
			}
			client := fake.NewClientset(objs...)
			got, err := Sync(context.Background(), client, lister(t, client), Owner{Object: set, Kind: kind, Template: template("nginx:1"), Limit: 10}, map[string]bool{})
			if err != nil {
				t.Fatal(err)
			}
			if got.Name != tc.want {
				t.Fatalf("Sync chose %s, want %s", got.Name, tc.want)
			}
			if n := numbers(t, client); len(n) != len(tc.after) || n["a1"] != tc.after["a1"] || n["a2"] != tc.after["a2"] || n["a3"] != tc.after["a3"] || n["b"] != tc.after["b"] {
				t.Fatalf("revisions afterwards %v, want %v", n, tc.after)
			}
		})
	}
}

func TestSyncWithSelectorAdoptsOrphanRevisions(t *testing.T) {
	set := owner()
	other := &appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Name: "other", Namespace: "default", UID: "other-uid"}}
	client := fake.NewClientset(
		revision(t, "web-old", 1, "nginx:1", nil),
		revision(t, "web-cur", 2, "nginx:2", nil),
		revision(t, "theirs", 3, "nginx:2", other),
	)
	stray := revision(t, "stray", 4, "nginx:2", nil)
	stray.Labels["app"] = "db"
	client.Tracker().Add(stray)
	rechecks := 0
	o := Owner{
		Object: set, Kind: kind, Template: template("nginx:2"), Limit: 10,
		Selector: labels.SelectorFromSet(labels.Set{"app": "web"}),
		CanAdopt: func(context.Context) error { rechecks++; return nil },
	}
	got, err := Sync(context.Background(), client, lister(t, client), o, map[string]bool{})
	if err != nil {
		t.Fatal(err)
	}
	if got.Name != "web-cur" || got.Revision != 2 {
		t.Fatalf("Sync chose %s (revision %d), want the adopted web-cur unchanged at 2", got.Name, got.Revision)
	}
	if rechecks != 1 {
		t.Fatalf("owner re-read %d times before adopting, want once", rechecks)
	}
	ctlOf := func(name string) string {
		cr, err := client.AppsV1().ControllerRevisions("default").Get(context.Background(), name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if ref := metav1.GetControllerOf(cr); ref != nil {
			return string(ref.UID)
		}
		return ""
	}
	for name, want := range map[string]string{"web-old": "set-uid", "web-cur": "set-uid", "theirs": "other-uid", "stray": ""} {
		if got := ctlOf(name); got != want {
			t.Errorf("%s controlled by %q, want %q", name, got, want)
		}
	}
	if n := numbers(t, client); len(n) != 4 {
		t.Fatalf("revisions %v: none should be created or deleted", n)
	}
}

func TestSyncDoesNotAdoptForAnOwnerGoneOrBeingDeleted(t *testing.T) {
	set := owner()
	client := fake.NewClientset(revision(t, "web-cur", 1, "nginx:1", nil))
	o := Owner{
		Object: set, Kind: kind, Template: template("nginx:1"), Limit: 10,
		Selector: labels.SelectorFromSet(labels.Set{"app": "web"}),
		CanAdopt: func(context.Context) error { return errors.New("web is being deleted") },
	}
	if _, err := Sync(context.Background(), client, lister(t, client), o, map[string]bool{}); err == nil {
		t.Fatal("Sync adopted for an owner whose recheck failed")
	}
	cr, _ := client.AppsV1().ControllerRevisions("default").Get(context.Background(), "web-cur", metav1.GetOptions{})
	if len(cr.OwnerReferences) != 0 {
		t.Fatalf("revision got owner references %v", cr.OwnerReferences)
	}
	deleting := owner()
	deleting.DeletionTimestamp = ptr.To(metav1.Now())
	o.Object, o.CanAdopt = deleting, nil
	got, err := Sync(context.Background(), client, lister(t, client), o, map[string]bool{})
	if err != nil {
		t.Fatal(err)
	}
	if n := numbers(t, client); got.Name != "web-cur" || len(n) != 1 {
		t.Fatalf("Sync of an owner being deleted chose %s, revisions %v: the orphan it matches counts, nothing is created", got.Name, n)
	}
	cr, _ = client.AppsV1().ControllerRevisions("default").Get(context.Background(), "web-cur", metav1.GetOptions{})
	if metav1.GetControllerOf(cr) != nil {
		t.Fatalf("an owner being deleted adopted %s", cr.Name)
	}
}
