package cluster

import (
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestTwoNodeCluster: pods are placed by the scheduler on both nodes and reached through
// the API (logs, exec) on either; a node whose agent is killed goes NotReady and its
// pods are replaced on the other; a restarted server (with its kubelet) leaves running
// pods running and re-adopts them; a rollout cut short by kill -9 of the server
// converges once it is back.
func TestTwoNodeCluster(t *testing.T) {
	c := newCluster(t)

	t.Run("pods spread over both nodes", func(t *testing.T) {
		c.mustKubectl(deployment("spread", "bb:1.0", 4), "apply", "-f", "-")
		c.eventually(90*time.Second, "4 pods running on both nodes", func() error {
			pods, err := c.runningPods("app=spread")
			if err != nil {
				return err
			}
			nodes := map[string]int{}
			for _, n := range pods {
				nodes[n]++
			}
			if len(pods) != 4 || nodes["tcl-n1"] == 0 || nodes["tcl-n2"] == 0 {
				return fmt.Errorf("running pods by node: %v", nodes)
			}
			return nil
		})
		// Each node gives its pods addresses from its own pod CIDR.
		out := c.mustKubectl("", "get", "nodes", "-o", "jsonpath={range .items[*]}{.metadata.name}={.spec.podCIDR} {end}")
		if !strings.Contains(out, "tcl-n1=10.202.") || !strings.Contains(out, "tcl-n2=10.202.") {
			t.Fatalf("pod CIDRs: %s", out)
		}
		pods, _ := c.runningPods("app=spread")
		for name, node := range pods {
			if got := c.mustKubectl("", "exec", name, "--", "cat", "/www/index.html"); !strings.Contains(got, "hello") {
				t.Fatalf("kubectl exec into %s on %s: %q", name, node, got)
			}
			if _, err := c.kubectl("", "logs", name); err != nil {
				t.Fatalf("kubectl logs of %s on %s: %v", name, node, err)
			}
		}
	})

	t.Run("a lost node's pods are replaced", func(t *testing.T) {
		stopCmd(c.agent, syscall.SIGKILL)
		c.eventually(60*time.Second, "node 2 not ready", func() error {
			out, _ := c.kubectl("", "get", "node", "tcl-n2", "-o", `jsonpath={.status.conditions[?(@.type=="Ready")].status}`)
			if strings.TrimSpace(out) == "True" {
				return fmt.Errorf("node 2 is still Ready")
			}
			return nil
		})
		mustHave(t, c.mustKubectl("", "get", "node", "tcl-n2"), "NotReady")
		c.eventually(90*time.Second, "4 pods running on node 1", func() error {
			pods, err := c.runningPods("app=spread")
			if err != nil {
				return err
			}
			n := 0
			for _, node := range pods {
				if node == "tcl-n1" {
					n++
				}
			}
			if n != 4 {
				return fmt.Errorf("running pods: %v", pods)
			}
			return nil
		})
		// Back again, the node turns Ready and its kubelet stops what was evicted.
		c.startAgent()
		c.waitReady("tcl-n2")
	})

	t.Run("a restarted server keeps its pods", func(t *testing.T) {
		before := c.containerIDs("app=spread")
		stopCmd(c.server, syscall.SIGTERM)
		c.startServer()
		c.waitReady("tcl-n1")
		c.eventually(60*time.Second, "the same containers, still running", func() error {
			after := c.containerIDs("app=spread")
			for pod, id := range before {
				if after[pod] != id {
					return fmt.Errorf("pod %s: container %s before, %q after", pod, id, after[pod])
				}
			}
			return nil
		})
		for _, p := range c.podList("app=spread") {
			for _, s := range p.restarts {
				if s != 0 {
					t.Fatalf("pod %s restarted its containers across the server restart", p.name)
				}
			}
		}
	})

	t.Run("a rollout cut short by kill -9 converges", func(t *testing.T) {
		c.mustKubectl("", "set", "image", "deployment/spread", "web=bb:2.0")
		stopCmd(c.server, syscall.SIGKILL)
		c.startServer()
		c.eventually(120*time.Second, "the rollout completes", func() error {
			out, err := c.kubectl("", "rollout", "status", "deployment/spread", "--timeout=5s")
			if err != nil {
				return fmt.Errorf("%v: %s", err, out)
			}
			return nil
		})
		c.eventually(60*time.Second, "every running pod on bb:2.0", func() error {
			n := 0
			for _, p := range c.podList("app=spread") {
				if p.running && !p.terminating {
					if p.image != "bb:2.0" {
						return fmt.Errorf("pod %s runs %s", p.name, p.image)
					}
					n++
				}
			}
			if n != 4 {
				return fmt.Errorf("%d pods running", n)
			}
			return nil
		})
	})
}

func mustHave(t *testing.T, got, want string) {
	t.Helper()
	if !strings.Contains(got, want) {
		t.Fatalf("want %q in:\n%s", want, got)
	}
}

type podSummary struct {
	name, image          string
	running, terminating bool
	restarts             []int32
}

func (c *cluster) podList(selector string) []podSummary {
	pods, err := c.client().CoreV1().Pods("default").List(c.t.Context(), metav1.ListOptions{LabelSelector: selector})
	if err != nil {
		c.t.Fatal(err)
	}
	var out []podSummary
	for _, p := range pods.Items {
		s := podSummary{name: p.Name, image: p.Spec.Containers[0].Image, running: p.Status.Phase == "Running", terminating: p.DeletionTimestamp != nil}
		for _, cs := range p.Status.ContainerStatuses {
			s.restarts = append(s.restarts, cs.RestartCount)
		}
		out = append(out, s)
	}
	return out
}

// containerIDs maps running pods to their first container's id.
func (c *cluster) containerIDs(selector string) map[string]string {
	pods, err := c.client().CoreV1().Pods("default").List(c.t.Context(), metav1.ListOptions{LabelSelector: selector})
	if err != nil {
		c.t.Fatal(err)
	}
	out := map[string]string{}
	for _, p := range pods.Items {
		if p.DeletionTimestamp == nil && len(p.Status.ContainerStatuses) > 0 && p.Status.ContainerStatuses[0].State.Running != nil {
			out[p.Name] = p.Status.ContainerStatuses[0].ContainerID
		}
	}
	return out
}
