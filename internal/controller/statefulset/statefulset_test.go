package statefulset

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/tools/record"
	"k8s.io/utils/ptr"

	"github.com/berth-project/berth/internal/controller/history"
)

type fixture struct {
	t      *testing.T
	client *fake.Clientset
	inf    informers.SharedInformerFactory
	c      *Controller
}

func newFixture(t *testing.T, objs ...runtime.Object) *fixture {
	f := &fixture{t: t, client: fake.NewClientset(objs...)}
	f.inf = informers.NewSharedInformerFactory(f.client, 0)
	f.c = New(f.client, f.inf.Apps().V1().StatefulSets(), f.inf.Core().V1().Pods(), f.inf.Core().V1().PersistentVolumeClaims(),
		f.inf.Apps().V1().ControllerRevisions(), record.NewFakeRecorder(100), slog.New(slog.DiscardHandler))
	f.reload()
	return f
}

func (f *fixture) reload() {
	ctx := context.Background()
	var sets, pods, pvcs, crs []any
	l1, _ := f.client.AppsV1().StatefulSets("").List(ctx, metav1.ListOptions{})
	for i := range l1.Items {
		sets = append(sets, &l1.Items[i])
	}
	l2, _ := f.client.CoreV1().Pods("").List(ctx, metav1.ListOptions{})
	for i := range l2.Items {
		pods = append(pods, &l2.Items[i])
	}
	l3, _ := f.client.CoreV1().PersistentVolumeClaims("").List(ctx, metav1.ListOptions{})
	for i := range l3.Items {
		pvcs = append(pvcs, &l3.Items[i])
	}
	l4, _ := f.client.AppsV1().ControllerRevisions("").List(ctx, metav1.ListOptions{})
	for i := range l4.Items {
		crs = append(crs, &l4.Items[i])
	}
	f.inf.Apps().V1().StatefulSets().Informer().GetIndexer().Replace(sets, "")
	f.inf.Core().V1().Pods().Informer().GetIndexer().Replace(pods, "")
	f.inf.Core().V1().PersistentVolumeClaims().Informer().GetIndexer().Replace(pvcs, "")
	f.inf.Apps().V1().ControllerRevisions().Informer().GetIndexer().Replace(crs, "")
}

func (f *fixture) sync() {
	f.t.Helper()
	if err := f.c.sync(context.Background(), "default/web"); err != nil {
		f.t.Fatal(err)
	}
	f.reload()
}

// pods lists "name@revision" (revision "new" or "old" relative to the set's update revision).
func (f *fixture) pods() []string {
	set := f.set()
	l, _ := f.client.CoreV1().Pods("default").List(context.Background(), metav1.ListOptions{})
	var out []string
	for _, p := range l.Items {
		rev := "old"
		if p.Labels[history.HashLabel] == set.Status.UpdateRevision {
			rev = "new"
		}
		out = append(out, p.Name+"@"+rev)
	}
	sort.Strings(out)
	return out
}

func (f *fixture) set() *appsv1.StatefulSet {
	s, _ := f.client.AppsV1().StatefulSets("default").Get(context.Background(), "web", metav1.GetOptions{})
	return s
}

// ready makes every pod running and ready, as kubelets would.
func (f *fixture) ready() {
	l, _ := f.client.CoreV1().Pods("default").List(context.Background(), metav1.ListOptions{})
	for _, p := range l.Items {
		p.Status.Phase = corev1.PodRunning
		p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}
		f.client.CoreV1().Pods("default").UpdateStatus(context.Background(), &p, metav1.UpdateOptions{})
	}
	f.reload()
}

func statefulSet(replicas int32, policy appsv1.PodManagementPolicyType) *appsv1.StatefulSet {
	return &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default", UID: "set-uid", Generation: 1},
		Spec: appsv1.StatefulSetSpec{
			Replicas: ptr.To(replicas), ServiceName: "nginx", PodManagementPolicy: policy,
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "web"}},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "nginx:1"}}}},
			VolumeClaimTemplates: []corev1.PersistentVolumeClaim{{ObjectMeta: metav1.ObjectMeta{Name: "data"},
				Spec: corev1.PersistentVolumeClaimSpec{AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
					Resources: corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}}}}},
			UpdateStrategy: appsv1.StatefulSetUpdateStrategy{Type: appsv1.RollingUpdateStatefulSetStrategyType},
		},
	}
}

func TestOrderedReadyCreatesPodsOneAtATimeWithIdentityAndClaims(t *testing.T) {
	f := newFixture(t, statefulSet(3, appsv1.OrderedReadyPodManagement))
	f.sync()
	f.sync()
	if got := fmt.Sprint(f.pods()); got != "[web-0@new]" {
		t.Fatalf("pods %s; web-1 must wait for web-0 to be ready", got)
	}
	p, _ := f.client.CoreV1().Pods("default").Get(context.Background(), "web-0", metav1.GetOptions{})
	if p.Spec.Hostname != "web-0" || p.Spec.Subdomain != "nginx" || p.Labels[appsv1.StatefulSetPodNameLabel] != "web-0" || p.Labels[appsv1.PodIndexLabel] != "0" ||
		p.Spec.Volumes[0].PersistentVolumeClaim.ClaimName != "data-web-0" {
		t.Fatalf("pod identity %+v %+v", p.Labels, p.Spec)
	}
	if _, err := f.client.CoreV1().PersistentVolumeClaims("default").Get(context.Background(), "data-web-0", metav1.GetOptions{}); err != nil {
		t.Fatalf("claim: %v", err)
	}
	for range 2 {
		f.ready()
		f.sync()
	}
	f.ready()
	f.sync()
	if got := fmt.Sprint(f.pods()); got != "[web-0@new web-1@new web-2@new]" {
		t.Fatalf("pods %s", got)
	}
	if st := f.set().Status; st.Replicas != 3 || st.ReadyReplicas != 3 || st.CurrentRevision != st.UpdateRevision || st.UpdatedReplicas != 3 {
		t.Fatalf("status %+v", st)
	}

	// Scale down from the highest ordinal, one at a time.
	set := f.set()
	set.Spec.Replicas = ptr.To[int32](1)
	f.client.AppsV1().StatefulSets("default").Update(context.Background(), set, metav1.UpdateOptions{})
	f.reload()
	f.sync()
	if got := fmt.Sprint(f.pods()); got != "[web-0@new web-1@new]" {
		t.Fatalf("after one scale-down step: %s", got)
	}
}

func TestParallelCreatesAllPodsAtOnce(t *testing.T) {
	f := newFixture(t, statefulSet(3, appsv1.ParallelPodManagement))
	f.sync()
	if got := fmt.Sprint(f.pods()); got != "[web-0@new web-1@new web-2@new]" {
		t.Fatalf("pods %s", got)
	}
}

func TestRollingUpdateGoesFromTheHighestOrdinalDownToThePartition(t *testing.T) {
	f := newFixture(t, statefulSet(3, appsv1.ParallelPodManagement))
	f.sync()
	f.ready()
	f.sync()
	set := f.set()
	set.Spec.Template.Spec.Containers[0].Image = "nginx:2"
	set.Spec.UpdateStrategy.RollingUpdate = &appsv1.RollingUpdateStatefulSetStrategy{Partition: ptr.To[int32](1)}
	f.client.AppsV1().StatefulSets("default").Update(context.Background(), set, metav1.UpdateOptions{})
	f.reload()
	var seen []string
	for range 8 {
		f.sync()
		seen = append(seen, fmt.Sprint(f.pods()))
		f.ready()
	}
	if got := fmt.Sprint(f.pods()); got != "[web-0@old web-1@new web-2@new]" {
		t.Fatalf("after the update: %s (steps %v)", got, seen)
	}
	if seen[0] != "[web-0@old web-1@old]" {
		t.Fatalf("first step %s, want web-2 replaced first", seen[0])
	}
	if st := f.set().Status; st.CurrentRevision == st.UpdateRevision || st.UpdatedReplicas != 2 || st.CurrentReplicas != 1 {
		t.Fatalf("status %+v: with a partition the rollout stays partial", st)
	}
}
