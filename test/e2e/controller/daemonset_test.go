package controller

import (
	"context"
	"sort"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

const logsYAML = `apiVersion: apps/v1
kind: DaemonSet
metadata: {name: logs}
spec:
  selector:
    matchLabels: {app: logs}
  template:
    metadata:
      labels: {app: logs}
    spec:
      nodeSelector: {tctl-logs: "yes"}
      containers:
      - {name: c, image: busybox:1.36, command: [sleep, "3600"]}
`

func TestDaemonSetRunsOnePodPerNodeAndRollsBack(t *testing.T) {
	need(t)
	cs := client(t)
	ctx := context.Background()
	ns := namespace(t, "ds")
	var names []string
	for range 2 {
		n := startNode(t, cs, uniq("node"))
		n.serve(t, ns)
		kubectl(t, "label", "node", n.name, "tctl-logs=yes")
		names = append(names, n.name)
	}
	other := startNode(t, cs, uniq("node")) // not labelled: no daemon pod
	other.serve(t, ns)
	if out, err := kubectlRun(t, []byte(logsYAML), "-n", ns, "apply", "-f", "-"); err != nil {
		t.Fatalf("kubectl apply: %v\n%s", err, out)
	}
	mustContain(t, "rollout status", kubectl(t, "-n", ns, "rollout", "status", "ds/logs", "--timeout=30s"), "successfully rolled out")
	placed := func() []string {
		l, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=logs"})
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, p := range l.Items {
			out = append(out, p.Spec.NodeName)
		}
		sort.Strings(out)
		return out
	}
	sort.Strings(names)
	if got := placed(); strings.Join(got, ",") != strings.Join(names, ",") {
		t.Fatalf("daemon pods on %v, want one on each of %v", got, names)
	}

	kubectl(t, "-n", ns, "set", "image", "ds/logs", "c=busybox:1.37")
	kubectl(t, "-n", ns, "rollout", "status", "ds/logs", "--timeout=30s")
	mustContain(t, "image after the update", kubectl(t, "-n", ns, "get", "pods", "-l", "app=logs", "-o", "jsonpath={.items[*].spec.containers[0].image}"), "busybox:1.37 busybox:1.37")
	history := kubectl(t, "-n", ns, "rollout", "history", "ds/logs")
	mustContain(t, "history", history, "1 ")
	mustContain(t, "history", history, "2 ")
	kubectl(t, "-n", ns, "rollout", "undo", "ds/logs")
	kubectl(t, "-n", ns, "rollout", "status", "ds/logs", "--timeout=30s")
	eventually(t, 10*time.Second, "pods back on the first image", func() (bool, error) {
		imgs := kubectl(t, "-n", ns, "get", "pods", "-l", "app=logs", "-o", "jsonpath={.items[*].spec.containers[0].image}")
		return imgs == "busybox:1.36 busybox:1.36", nil
	})
	mustContain(t, "history after undo", kubectl(t, "-n", ns, "rollout", "history", "ds/logs"), "3 ")
}
