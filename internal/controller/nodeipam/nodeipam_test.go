package nodeipam

import (
	"context"
	"errors"
	"log/slog"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/tools/record"
)

func TestCIDRsHandsOutEveryBlockOnce(t *testing.T) {
	c, err := NewCIDRs("10.42.0.0/22", 24)
	if err != nil {
		t.Fatal(err)
	}
	if !c.Occupy("10.42.1.0/24") || c.Occupy("10.43.0.0/24") || c.Occupy("10.42.2.0/25") {
		t.Fatal("Occupy accepted a block outside the cluster CIDR or of the wrong size")
	}
	var got []string
	for {
		b, err := c.Allocate()
		if errors.Is(err, ErrFull) {
			break
		}
		got = append(got, b)
	}
	if len(got) != 3 || got[0] != "10.42.0.0/24" || got[1] != "10.42.2.0/24" || got[2] != "10.42.3.0/24" {
		t.Fatalf("allocated %v", got)
	}
	c.Release("10.42.2.0/24")
	if b, _ := c.Allocate(); b != "10.42.2.0/24" {
		t.Fatalf("after release: %s", b)
	}
	if _, err := NewCIDRs("10.42.0.0/16", 8); err == nil {
		t.Fatal("mask shorter than the cluster's accepted")
	}
	v6, err := NewCIDRs("fd00:42::/56", 64)
	if err != nil {
		t.Fatal(err)
	}
	v6.Occupy("fd00:42::/64")
	if b, _ := v6.Allocate(); b != "fd00:42:0:1::/64" {
		t.Fatalf("IPv6 block %s", b)
	}
}

func TestNewNodeGetsTheLowestBlockNoNodeHolds(t *testing.T) {
	withCIDR := func(name, cidr string) *corev1.Node {
		n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: corev1.NodeSpec{PodCIDR: cidr}}
		if cidr != "" {
			n.Spec.PodCIDRs = []string{cidr}
		}
		return n
	}
	objs := []runtime.Object{withCIDR("a", "10.42.0.0/24"), withCIDR("b", "10.42.1.0/24"), withCIDR("c", "10.42.3.0/24"), withCIDR("new", "")}
	client := fake.NewClientset(objs...)
	inf := informers.NewSharedInformerFactory(client, 0)
	c, err := New(client, inf.Core().V1().Nodes(), "10.42.0.0/16", 24, record.NewFakeRecorder(10), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range objs {
		inf.Core().V1().Nodes().Informer().GetIndexer().Add(o)
	}
	if err := c.rebuild(); err != nil {
		t.Fatal(err)
	}
	if err := c.sync(context.Background(), "new"); err != nil {
		t.Fatal(err)
	}
	got, _ := client.CoreV1().Nodes().Get(context.Background(), "new", metav1.GetOptions{})
	if got.Spec.PodCIDR != "10.42.2.0/24" || len(got.Spec.PodCIDRs) != 1 || got.Spec.PodCIDRs[0] != "10.42.2.0/24" {
		t.Fatalf("new node got %q %v, want the free 10.42.2.0/24", got.Spec.PodCIDR, got.Spec.PodCIDRs)
	}
	// A deleted node's block is free again.
	inf.Core().V1().Nodes().Informer().GetIndexer().Delete(objs[1])
	if err := c.sync(context.Background(), "b"); err != nil {
		t.Fatal(err)
	}
	if b, _ := c.cidrs.Allocate(); b != "10.42.1.0/24" {
		t.Fatalf("after deleting b: %s", b)
	}
}
