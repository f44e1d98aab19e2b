package deployment

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	core "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/utils/ptr"
)

type fixture struct {
	t      *testing.T
	client *fake.Clientset
	inf    informers.SharedInformerFactory
	c      *Controller
	events *record.FakeRecorder
	clock  time.Time
}

// newFixture builds a controller whose informers and fake API server hold objs.
func newFixture(t *testing.T, objs ...runtime.Object) *fixture {
	f := &fixture{t: t, client: fake.NewClientset(objs...), events: record.NewFakeRecorder(1000), clock: time.Now()}
	f.client.PrependReactor("create", "replicasets", func(a core.Action) (bool, runtime.Object, error) {
		rs := a.(core.CreateAction).GetObject().(*appsv1.ReplicaSet)
		rs.UID = types.UID(rs.Name + "-uid")
		rs.CreationTimestamp = metav1.NewTime(f.clock)
		return false, nil, nil
	})
	f.inf = informers.NewSharedInformerFactory(f.client, 0)
	f.c = New(f.client, f.inf.Apps().V1().Deployments(), f.inf.Apps().V1().ReplicaSets(), f.inf.Core().V1().Pods(), f.events, slog.New(slog.DiscardHandler))
	f.c.now = func() time.Time { return f.clock }
	f.reload()
	f.client.ClearActions()
	return f
}

// reload makes the informers' caches show what the fake API server holds.
func (f *fixture) reload() {
	ctx := context.Background()
	ds, _ := f.client.AppsV1().Deployments("").List(ctx, metav1.ListOptions{})
	rss, _ := f.client.AppsV1().ReplicaSets("").List(ctx, metav1.ListOptions{})
	ps, _ := f.client.CoreV1().Pods("").List(ctx, metav1.ListOptions{})
	replace(f.inf.Apps().V1().Deployments().Informer().GetIndexer(), ds.Items)
	replace(f.inf.Apps().V1().ReplicaSets().Informer().GetIndexer(), rss.Items)
	replace(f.inf.Core().V1().Pods().Informer().GetIndexer(), ps.Items)
}

func replace[T any](idx cache.Indexer, items []T) {
	var objs []any
	for i := range items {
		objs = append(objs, &items[i])
	}
	idx.Replace(objs, "")
}

func (f *fixture) sync() {
	f.t.Helper()
	if err := f.c.sync(context.Background(), "default/web"); err != nil {
		f.t.Fatalf("sync: %v", err)
	}
	f.reload()
}

func (f *fixture) deployment() *appsv1.Deployment {
	d, err := f.client.AppsV1().Deployments("default").Get(context.Background(), "web", metav1.GetOptions{})
	if err != nil {
		f.t.Fatal(err)
	}
	return d
}

func (f *fixture) replicaSets() []*appsv1.ReplicaSet {
	l, _ := f.client.AppsV1().ReplicaSets("default").List(context.Background(), metav1.ListOptions{})
	var out []*appsv1.ReplicaSet
	for i := range l.Items {
		out = append(out, &l.Items[i])
	}
	sortOldestFirst(out)
	return out
}

func (f *fixture) update(obj runtime.Object) {
	f.t.Helper()
	var err error
	switch o := obj.(type) {
	case *appsv1.Deployment:
		_, err = f.client.AppsV1().Deployments(o.Namespace).Update(context.Background(), o, metav1.UpdateOptions{})
	case *appsv1.ReplicaSet:
		_, err = f.client.AppsV1().ReplicaSets(o.Namespace).Update(context.Background(), o, metav1.UpdateOptions{})
	}
	if err != nil {
		f.t.Fatal(err)
	}
	f.reload()
}

func (f *fixture) writes() []string {
	var out []string
	for _, a := range f.client.Actions() {
		if v := a.GetVerb(); v != "get" && v != "list" && v != "watch" {
			s := v + " " + a.GetResource().Resource
			if a.GetSubresource() != "" {
				s += "/" + a.GetSubresource()
			}
			out = append(out, s)
		}
	}
	return out
}

func newDeployment(replicas int32, image string) *appsv1.Deployment {
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default", UID: "web-uid", Generation: 1},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To(replicas),
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
			Template: template(image),
			Strategy: appsv1.DeploymentStrategy{Type: appsv1.RollingUpdateDeploymentStrategyType, RollingUpdate: &appsv1.RollingUpdateDeployment{
				MaxSurge: ptr.To(intstr.FromString("25%")), MaxUnavailable: ptr.To(intstr.FromString("25%"))}},
			RevisionHistoryLimit:    ptr.To[int32](10),
			ProgressDeadlineSeconds: ptr.To[int32](600),
		},
	}
}

func template(image string) corev1.PodTemplateSpec {
	return corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "web"}},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: image}}},
	}
}

// ownedRS is a ReplicaSet the Deployment made for image at revision rev.
func ownedRS(d *appsv1.Deployment, image string, rev int, replicas int32, age time.Duration) *appsv1.ReplicaSet {
	t := template(image)
	hash := TemplateHash(&t, nil)
	t.Labels[HashLabel] = hash
	return &appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{
			Name: "web-" + hash, Namespace: "default", UID: types.UID("rs-" + hash), Labels: t.Labels,
			CreationTimestamp: metav1.NewTime(time.Now().Add(-age)),
			Annotations: map[string]string{RevisionAnnotation: fmt.Sprint(rev),
				DesiredReplicasAnnotation: fmt.Sprint(desired(d)), MaxReplicasAnnotation: fmt.Sprint(desired(d) + maxSurge(d))},
			OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(d, Kind)},
		},
		Spec: appsv1.ReplicaSetSpec{
			Replicas: ptr.To(replicas),
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web", HashLabel: hash}},
			Template: t,
		},
		Status: appsv1.ReplicaSetStatus{Replicas: replicas, ReadyReplicas: replicas, AvailableReplicas: replicas},
	}
}
