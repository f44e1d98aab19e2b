package daemonset

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"sync/atomic"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	core "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/record"
)

func node(name string, lbls map[string]string, taints ...corev1.Taint) *corev1.Node {
	return &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: lbls}, Spec: corev1.NodeSpec{Taints: taints}}
}

func TestPlacementFollowsSelectorAffinityAndTaints(t *testing.T) {
	spec := &corev1.PodSpec{NodeSelector: map[string]string{"disk": "ssd"}}
	ssd := map[string]string{"disk": "ssd", "zone": "a"}
	for _, tc := range []struct {
		name                  string
		node                  *corev1.Node
		spec                  *corev1.PodSpec
		shouldRun, shouldStay bool
	}{
		{"selector matches", node("n", ssd), spec, true, true},
		{"selector does not match", node("n", map[string]string{"disk": "hdd"}), spec, false, false},
		{"cordoned: daemons run anyway", node("n", ssd, corev1.Taint{Key: corev1.TaintNodeUnschedulable, Effect: corev1.TaintEffectNoSchedule}), spec, true, true},
		{"NoSchedule taint: no new pod, the old stays", node("n", ssd, corev1.Taint{Key: "gpu", Effect: corev1.TaintEffectNoSchedule}), spec, false, true},
		{"NoExecute taint: none at all", node("n", ssd, corev1.Taint{Key: "gpu", Effect: corev1.TaintEffectNoExecute}), spec, false, false},
		{"affinity NotIn", node("n", ssd), &corev1.PodSpec{Affinity: &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{
			RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{NodeSelectorTerms: []corev1.NodeSelectorTerm{
				{MatchExpressions: []corev1.NodeSelectorRequirement{{Key: "zone", Operator: corev1.NodeSelectorOpNotIn, Values: []string{"a"}}}},
			}}}}}, false, false},
	} {
		run, stay := placement(tc.spec, tc.node)
		if run != tc.shouldRun || stay != tc.shouldStay {
			t.Errorf("%s: run %v stay %v, want %v %v", tc.name, run, stay, tc.shouldRun, tc.shouldStay)
		}
	}
	if got := targetNode(&corev1.Pod{Spec: pinned(spec, "n7")}); got != "n7" {
		t.Fatalf("pinned pod targets %q", got)
	}
}

type fixture struct {
	t      *testing.T
	client *fake.Clientset
	inf    informers.SharedInformerFactory
	c      *Controller
}

func newFixture(t *testing.T, objs ...runtime.Object) *fixture {
	f := &fixture{t: t, client: fake.NewClientset(objs...)}
	var n atomic.Int32
	f.client.PrependReactor("create", "pods", func(a core.Action) (bool, runtime.Object, error) {
		p := a.(core.CreateAction).GetObject().(*corev1.Pod)
		p.Name = fmt.Sprintf("%s%d", p.GenerateName, n.Add(1))
		p.CreationTimestamp = metav1.NewTime(time.Now().Add(time.Duration(n.Load()) * time.Second))
		return false, nil, nil
	})
	f.inf = informers.NewSharedInformerFactory(f.client, 0)
	f.c = New(f.client, f.inf.Apps().V1().DaemonSets(), f.inf.Core().V1().Pods(), f.inf.Core().V1().Nodes(),
		f.inf.Apps().V1().ControllerRevisions(), record.NewFakeRecorder(100), slog.New(slog.DiscardHandler))
	f.reload()
	return f
}

func (f *fixture) reload() {
	ctx := context.Background()
	set := func(inf interface{ Replace([]any, string) error }, items []runtime.Object) {
		var objs []any
		for _, o := range items {
			objs = append(objs, o)
		}
		inf.Replace(objs, "")
	}
	ds, _ := f.client.AppsV1().DaemonSets("").List(ctx, metav1.ListOptions{})
	ps, _ := f.client.CoreV1().Pods("").List(ctx, metav1.ListOptions{})
	ns, _ := f.client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	crs, _ := f.client.AppsV1().ControllerRevisions("").List(ctx, metav1.ListOptions{})
	var a, b, c, d []runtime.Object
	for i := range ds.Items {
		a = append(a, &ds.Items[i])
	}
	for i := range ps.Items {
		b = append(b, &ps.Items[i])
	}
	for i := range ns.Items {
		c = append(c, &ns.Items[i])
	}
	for i := range crs.Items {
		d = append(d, &crs.Items[i])
	}
	set(f.inf.Apps().V1().DaemonSets().Informer().GetIndexer(), a)
	set(f.inf.Core().V1().Pods().Informer().GetIndexer(), b)
	set(f.inf.Core().V1().Nodes().Informer().GetIndexer(), c)
	set(f.inf.Apps().V1().ControllerRevisions().Informer().GetIndexer(), d)
	f.c.exp.Forget("default/logs")
}

func (f *fixture) sync() {
	f.t.Helper()
	if err := f.c.sync(context.Background(), "default/logs"); err != nil {
		f.t.Fatal(err)
	}
	f.reload()
}

// runAll makes every daemon pod bound, running and ready.
func (f *fixture) runAll() {
	for _, p := range f.pods() {
		p.Spec.NodeName = targetNode(&p)
		f.client.CoreV1().Pods("default").Update(context.Background(), &p, metav1.UpdateOptions{})
		p.Status.Phase = corev1.PodRunning
		p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}
		f.client.CoreV1().Pods("default").UpdateStatus(context.Background(), &p, metav1.UpdateOptions{})
	}
	f.reload()
}

func (f *fixture) pods() []corev1.Pod {
	l, _ := f.client.CoreV1().Pods("default").List(context.Background(), metav1.ListOptions{})
	sort.Slice(l.Items, func(i, j int) bool { return targetNode(&l.Items[i]) < targetNode(&l.Items[j]) })
	return l.Items
}

func (f *fixture) ds() *appsv1.DaemonSet {
	ds, _ := f.client.AppsV1().DaemonSets("default").Get(context.Background(), "logs", metav1.GetOptions{})
	return ds
}

func daemonSet(image string) *appsv1.DaemonSet {
	return &appsv1.DaemonSet{
		ObjectMeta: metav1.ObjectMeta{Name: "logs", Namespace: "default", UID: "ds-uid", Generation: 1},
		Spec: appsv1.DaemonSetSpec{
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "logs"}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "logs"}},
				Spec:       corev1.PodSpec{NodeSelector: map[string]string{"logs": "yes"}, Containers: []corev1.Container{{Name: "c", Image: image}}},
			},
			UpdateStrategy: appsv1.DaemonSetUpdateStrategy{Type: appsv1.RollingUpdateDaemonSetStrategyType},
		},
	}
}

func TestOnePodOnEveryFittingNodeThenRollingUpdateOneAtATime(t *testing.T) {
	yes := map[string]string{"logs": "yes"}
	f := newFixture(t, daemonSet("fluent:1"), node("a", yes), node("b", yes), node("c", yes), node("d", nil))
	f.sync()
	ps := f.pods()
	if len(ps) != 3 || targetNode(&ps[0]) != "a" || targetNode(&ps[2]) != "c" {
		t.Fatalf("%d pods", len(ps))
	}
	crs, _ := f.client.AppsV1().ControllerRevisions("default").List(context.Background(), metav1.ListOptions{})
	if len(crs.Items) != 1 || crs.Items[0].Revision != 1 || ps[0].Labels[HashLabel] != crs.Items[0].Labels[HashLabel] {
		t.Fatalf("revisions %+v", crs.Items)
	}
	f.runAll()
	f.sync()
	if st := f.ds().Status; st.DesiredNumberScheduled != 3 || st.NumberReady != 3 || st.UpdatedNumberScheduled != 3 || st.NumberAvailable != 3 {
		t.Fatalf("status %+v", st)
	}

	ds := f.ds()
	ds.Spec.Template.Spec.Containers[0].Image = "fluent:2"
	ds.Generation = 2
	f.client.AppsV1().DaemonSets("default").Update(context.Background(), ds, metav1.UpdateOptions{})
	f.reload()
	for step := 0; ; step++ {
		if step > 10 {
			t.Fatal("update did not finish")
		}
		before := len(f.pods())
		f.sync()
		if after := len(f.pods()); before-after > 1 {
			t.Fatalf("step %d: %d pods deleted at once, maxUnavailable is 1", step, before-after)
		}
		f.runAll()
		if st := f.ds().Status; st.UpdatedNumberScheduled == 3 && st.NumberAvailable == 3 {
			break
		}
	}
	crs, _ = f.client.AppsV1().ControllerRevisions("default").List(context.Background(), metav1.ListOptions{})
	if len(crs.Items) != 2 {
		t.Fatalf("%d revisions, want 2", len(crs.Items))
	}
}
