package kubelet

import (
	"context"
	"net"
	"testing"
	"time"

	"google.golang.org/grpc"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// fakeRuntime answers the CRI calls node registration makes; any other call panics.
type fakeRuntime struct {
	runtimeapi.RuntimeServiceClient
	runtimeapi.ImageServiceClient
	ready   bool
	podCIDR string
}

func (f *fakeRuntime) Status(context.Context, *runtimeapi.StatusRequest, ...grpc.CallOption) (*runtimeapi.StatusResponse, error) {
	return &runtimeapi.StatusResponse{Status: &runtimeapi.RuntimeStatus{Conditions: []*runtimeapi.RuntimeCondition{
		{Type: "RuntimeReady", Status: true}, {Type: "NetworkReady", Status: f.ready, Reason: "NetworkPluginNotReady", Message: "cni config uninitialized"},
	}}}, nil
}

func (f *fakeRuntime) ListImages(context.Context, *runtimeapi.ListImagesRequest, ...grpc.CallOption) (*runtimeapi.ListImagesResponse, error) {
	return &runtimeapi.ListImagesResponse{Images: []*runtimeapi.Image{
		{Id: "sha256:small", RepoTags: []string{"small:1"}, Size: 10},
		{Id: "sha256:big", RepoTags: []string{"big:1"}, RepoDigests: []string{"big@sha256:abc"}, Size: 1000},
	}}, nil
}

func (f *fakeRuntime) UpdateRuntimeConfig(_ context.Context, r *runtimeapi.UpdateRuntimeConfigRequest, _ ...grpc.CallOption) (*runtimeapi.UpdateRuntimeConfigResponse, error) {
	f.podCIDR = r.RuntimeConfig.NetworkConfig.PodCidr
	return &runtimeapi.UpdateRuntimeConfigResponse{}, nil
}

func testKubelet(t *testing.T, objs ...corev1.Node) (*Kubelet, *fake.Clientset, *fakeRuntime) {
	cs := fake.NewClientset()
	for i := range objs {
		cs.Tracker().Add(&objs[i])
	}
	rt := &fakeRuntime{ready: true}
	k := &Kubelet{
		cfg: Config{NodeName: "n1", NodeIP: net.IPv4(10, 0, 0, 5), RootDir: t.TempDir(), MaxPods: 110, ServingAddr: ":10250",
			NodeLabels: map[string]string{"zone": "a"}, RegisterWithTaints: []corev1.Taint{{Key: "dedicated", Value: "x", Effect: corev1.TaintEffectNoSchedule}}},
		client: cs, runtime: rt, images: rt, runtimeVer: &runtimeapi.VersionResponse{RuntimeName: "containerd", RuntimeVersion: "1.6.20"},
	}
	k.log = discardLogger()
	return k, cs, rt
}

func TestNodeRegistration(t *testing.T) {
	k, cs, _ := testKubelet(t)
	ctx := t.Context()
	if err := k.registerNode(ctx); err != nil {
		t.Fatal(err)
	}
	n, err := cs.CoreV1().Nodes().Get(ctx, "n1", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if n.Labels["kubernetes.io/hostname"] != "n1" || n.Labels["zone"] != "a" || n.Labels["kubernetes.io/os"] != "linux" {
		t.Errorf("labels %v", n.Labels)
	}
	if len(n.Spec.Taints) != 1 || n.Spec.Taints[0].Key != "dedicated" {
		t.Errorf("taints %v", n.Spec.Taints)
	}
	if n.Status.NodeInfo.ContainerRuntimeVersion != "containerd://1.6.20" || n.Status.DaemonEndpoints.KubeletEndpoint.Port != 10250 {
		t.Errorf("nodeInfo %+v endpoints %+v", n.Status.NodeInfo, n.Status.DaemonEndpoints)
	}
	if p := n.Status.Capacity[corev1.ResourcePods]; p.Value() != 110 {
		t.Errorf("pods %s", p.String())
	}
	if len(n.Status.Images) != 2 || n.Status.Images[0].Names[0] != "big@sha256:abc" {
		t.Errorf("images, largest first: %+v", n.Status.Images)
	}
	if n.Status.Addresses[0].Type != corev1.NodeInternalIP || n.Status.Addresses[0].Address != "10.0.0.5" {
		t.Errorf("addresses %v", n.Status.Addresses)
	}
}

func TestNodeReadyFollowsTheRuntime(t *testing.T) {
	k, cs, rt := testKubelet(t)
	ctx := t.Context()
	rt.ready = false
	if err := k.registerNode(ctx); err != nil {
		t.Fatal(err)
	}
	ready := func() corev1.NodeCondition {
		n, _ := cs.CoreV1().Nodes().Get(ctx, "n1", metav1.GetOptions{})
		for _, c := range n.Status.Conditions {
			if c.Type == corev1.NodeReady {
				return c
			}
		}
		t.Fatal("no Ready condition")
		return corev1.NodeCondition{}
	}
	if c := ready(); c.Status != corev1.ConditionFalse || c.Reason != "KubeletNotReady" {
		t.Errorf("runtime network not ready: %+v", c)
	}
	rt.ready = true
	if _, err := k.updateNodeStatus(ctx); err != nil {
		t.Fatal(err)
	}
	if c := ready(); c.Status != corev1.ConditionTrue || c.Reason != "KubeletReady" {
		t.Errorf("runtime ready: %+v", c)
	}
}

func TestExistingNodeIsAdoptedAndItsPodCIDRPassedOn(t *testing.T) {
	existing := corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1", Labels: map[string]string{"keep": "me"}}, Spec: corev1.NodeSpec{PodCIDR: "10.42.3.0/24"}}
	k, cs, rt := testKubelet(t, existing)
	ctx := t.Context()
	if err := k.registerNode(ctx); err != nil {
		t.Fatal(err)
	}
	n, err := k.updateNodeStatus(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if n.Labels["keep"] != "me" || n.Labels["zone"] != "a" {
		t.Errorf("labels after adoption: %v", n.Labels)
	}
	if err := k.setPodCIDR(ctx, n.Spec.PodCIDR); err != nil || rt.podCIDR != "10.42.3.0/24" {
		t.Errorf("pod CIDR passed: %q %v", rt.podCIDR, err)
	}
	if _, err := cs.CoreV1().Nodes().Get(ctx, "n1", metav1.GetOptions{}); err != nil {
		t.Fatal(err)
	}
}

func TestLeaseIsCreatedThenRenewed(t *testing.T) {
	k, cs, _ := testKubelet(t)
	ctx := t.Context()
	if err := k.registerNode(ctx); err != nil {
		t.Fatal(err)
	}
	if err := k.renewLease(ctx); err != nil {
		t.Fatal(err)
	}
	l, err := cs.CoordinationV1().Leases("kube-node-lease").Get(ctx, "n1", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if *l.Spec.HolderIdentity != "n1" || *l.Spec.LeaseDurationSeconds != 40 || len(l.OwnerReferences) != 1 || l.OwnerReferences[0].Kind != "Node" {
		t.Errorf("lease %+v owners %v", l.Spec, l.OwnerReferences)
	}
	first := l.Spec.RenewTime.DeepCopy()
	if err := k.renewLease(ctx); err != nil {
		t.Fatal(err)
	}
	l, _ = cs.CoordinationV1().Leases("kube-node-lease").Get(ctx, "n1", metav1.GetOptions{})
	if l.Spec.RenewTime.Before(first) {
		t.Errorf("renewTime went back: %v -> %v", first, l.Spec.RenewTime)
	}
}

// TestNodePressureIsReadOncePerHalfPeriod: statuses computed together (registration, the
// first renewal, a pod CIDR's arrival) share one reading of memory, disk and PIDs; the next
// periodic renewal reads them anew.
func TestNodePressureIsReadOncePerHalfPeriod(t *testing.T) {
	k, _, _ := testKubelet(t)
	k.pressure()
	read := k.pressedAt
	k.pressed = nodePressure{memory: true} // as if that reading had seen memory pressure
	memoryPressure := func() corev1.ConditionStatus {
		for _, c := range k.nodeStatus(nil).Conditions {
			if c.Type == corev1.NodeMemoryPressure {
				return c.Status
			}
		}
		return ""
	}
	if got := memoryPressure(); got != corev1.ConditionTrue || !k.pressedAt.Equal(read) {
		t.Errorf("within %s: MemoryPressure=%s, read again: %v; want the last reading's True", pressureMaxAge, got, !k.pressedAt.Equal(read))
	}
	k.pressedAt = time.Now().Add(-pressureMaxAge)
	read = k.pressedAt
	memoryPressure()
	if k.pressedAt.Equal(read) {
		t.Errorf("a reading %s old served again", pressureMaxAge)
	}
}
