package endpointslice

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	core "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/record"
)

func service(targetPort intstr.IntOrString) *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default", UID: "svc-uid", Labels: map[string]string{"team": "a"}},
		Spec: corev1.ServiceSpec{Selector: map[string]string{"app": "web"}, ClusterIP: "10.43.0.20",
			Ports: []corev1.ServicePort{{Name: "http", Port: 80, Protocol: corev1.ProtocolTCP, TargetPort: targetPort}}},
	}
}

func pod(name, ip string, ready bool, port int32) *corev1.Pod {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", UID: types.UID("uid-" + name), Labels: map[string]string{"app": "web"}},
		Spec: corev1.PodSpec{NodeName: "n1", Containers: []corev1.Container{{Name: "c",
			Ports: []corev1.ContainerPort{{Name: "web", ContainerPort: port, Protocol: corev1.ProtocolTCP}}}}},
		Status: corev1.PodStatus{Phase: corev1.PodRunning, PodIP: ip},
	}
	if ready {
		p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}
	}
	return p
}

func describe(groups []Group) string {
	var s string
	for _, g := range groups {
		s += fmt.Sprintf("port %d:", *g.Ports[0].Port)
		for _, ep := range g.Endpoints {
			s += fmt.Sprintf(" %s(r=%v s=%v t=%v)", ep.Addresses[0], *ep.Conditions.Ready, *ep.Conditions.Serving, *ep.Conditions.Terminating)
		}
		s += ";"
	}
	return s
}

func TestEndpointsFollowPodReadinessAndNamedPorts(t *testing.T) {
	terminating := pod("d", "10.42.0.4", true, 8080)
	terminating.DeletionTimestamp = &metav1.Time{Time: time.Now()}
	done := pod("e", "10.42.0.5", false, 8080)
	done.Status.Phase = corev1.PodSucceeded
	selected := []*corev1.Pod{
		pod("a", "10.42.0.2", true, 8080), pod("b", "10.42.0.3", false, 8080), terminating, done,
		pod("f", "", false, 8080),         // no address yet
		pod("g", "10.42.1.2", true, 9090), // the named port is elsewhere in this pod
	}
	got := describe(Desired(service(intstr.FromString("web")), selected))
	want := "port 8080: 10.42.0.2(r=true s=true t=false) 10.42.0.3(r=false s=false t=false) 10.42.0.4(r=false s=true t=true);port 9090: 10.42.1.2(r=true s=true t=false);"
	if got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
	publish := service(intstr.FromInt32(8080))
	publish.Spec.PublishNotReadyAddresses = true
	if got := describe(Desired(publish, selected[1:2])); got != "port 8080: 10.42.0.3(r=true s=true t=false);" {
		t.Fatalf("publishNotReadyAddresses: %s", got)
	}
}

type fixture struct {
	client *fake.Clientset
	inf    informers.SharedInformerFactory
	c      *Controller
}

func newFixture(t *testing.T, objs ...runtime.Object) *fixture {
	f := &fixture{client: fake.NewClientset(objs...)}
	f.client.PrependReactor("create", "endpointslices", func(a core.Action) (bool, runtime.Object, error) {
		s := a.(core.CreateAction).GetObject().(*discoveryv1.EndpointSlice)
		s.Name = s.GenerateName + "abcde"
		return false, nil, nil
	})
	f.inf = informers.NewSharedInformerFactory(f.client, 0)
	f.c = New(f.client, f.inf.Core().V1().Services(), f.inf.Core().V1().Pods(), f.inf.Discovery().V1().EndpointSlices(),
		f.inf.Core().V1().Endpoints(), record.NewFakeRecorder(10), slog.New(slog.DiscardHandler))
	f.reload()
	return f
}

func (f *fixture) reload() {
	ctx := context.Background()
	var svcs, pods, slices, eps []any
	l1, _ := f.client.CoreV1().Services("").List(ctx, metav1.ListOptions{})
	for i := range l1.Items {
		svcs = append(svcs, &l1.Items[i])
	}
	l2, _ := f.client.CoreV1().Pods("").List(ctx, metav1.ListOptions{})
	for i := range l2.Items {
		pods = append(pods, &l2.Items[i])
	}
	l3, _ := f.client.DiscoveryV1().EndpointSlices("").List(ctx, metav1.ListOptions{})
	for i := range l3.Items {
		slices = append(slices, &l3.Items[i])
	}
	l4, _ := f.client.CoreV1().Endpoints("").List(ctx, metav1.ListOptions{})
	for i := range l4.Items {
		eps = append(eps, &l4.Items[i])
	}
	f.inf.Core().V1().Services().Informer().GetIndexer().Replace(svcs, "")
	f.inf.Core().V1().Pods().Informer().GetIndexer().Replace(pods, "")
	f.inf.Discovery().V1().EndpointSlices().Informer().GetIndexer().Replace(slices, "")
	f.inf.Core().V1().Endpoints().Informer().GetIndexer().Replace(eps, "")
}

func (f *fixture) sync(t *testing.T) []string {
	t.Helper()
	f.client.ClearActions()
	if err := f.c.sync(context.Background(), "default/web"); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, a := range f.client.Actions() {
		if v := a.GetVerb(); v != "get" && v != "list" && v != "watch" {
			out = append(out, v+" "+a.GetResource().Resource)
		}
	}
	f.reload()
	return out
}

func TestServiceGetsASliceAndEndpointsThatFollowItsPods(t *testing.T) {
	f := newFixture(t, service(intstr.FromInt32(8080)), pod("a", "10.42.0.2", true, 8080), pod("b", "10.42.0.3", false, 8080))
	if w := f.sync(t); fmt.Sprint(w) != "[create endpointslices create endpoints]" {
		t.Fatalf("writes %v", w)
	}
	s, err := f.client.DiscoveryV1().EndpointSlices("default").Get(context.Background(), "web-abcde", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if s.Labels[discoveryv1.LabelServiceName] != "web" || s.Labels[discoveryv1.LabelManagedBy] != ManagedBy || s.Labels["team"] != "a" ||
		len(s.OwnerReferences) != 1 || s.OwnerReferences[0].UID != "svc-uid" || len(s.Endpoints) != 2 || *s.Ports[0].Port != 8080 {
		t.Fatalf("slice %+v", s)
	}
	ep, _ := f.client.CoreV1().Endpoints("default").Get(context.Background(), "web", metav1.GetOptions{})
	if len(ep.Subsets) != 1 || len(ep.Subsets[0].Addresses) != 1 || ep.Subsets[0].Addresses[0].IP != "10.42.0.2" || ep.Subsets[0].NotReadyAddresses[0].IP != "10.42.0.3" {
		t.Fatalf("endpoints %+v", ep.Subsets)
	}
	if w := f.sync(t); len(w) != 0 {
		t.Fatalf("nothing changed, yet writes %v", w)
	}
	f.client.CoreV1().Pods("default").Delete(context.Background(), "a", metav1.DeleteOptions{})
	f.reload()
	if w := f.sync(t); fmt.Sprint(w) != "[update endpointslices update endpoints]" {
		t.Fatalf("writes %v", w)
	}
}

func TestServiceWithoutSelectorIsLeftAlone(t *testing.T) {
	svc := service(intstr.FromInt32(80))
	svc.Spec.Selector = nil
	f := newFixture(t, svc, pod("a", "10.42.0.2", true, 80))
	if w := f.sync(t); len(w) != 0 {
		t.Fatalf("writes %v", w)
	}
}
