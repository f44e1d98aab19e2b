package controller

import (
	"strings"
	"testing"
	"time"
)

const adoptYAML = `apiVersion: apps/v1
kind: StatefulSet
metadata: {name: web}
spec:
  serviceName: web
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - {name: c, image: busybox:1.36, command: [sleep, "3600"]}
`

// TestStatefulSetAdoptsOrphansAndReleasesRelabelledPods deletes a StatefulSet with
// --cascade=orphan and creates it again: the new set takes back the same pods (same
// uids) and its revision instead of replacing them. A pod relabelled out of the
// selector is then released; its ordinal is filled again once it is gone.
func TestStatefulSetAdoptsOrphansAndReleasesRelabelledPods(t *testing.T) {
	need(t)
	cs := client(t)
	ns := namespace(t, "stsadopt")
	n := startNode(t, cs, uniq("node"))
	n.serve(t, ns)
	apply := func() {
		t.Helper()
		if out, err := kubectlRun(t, []byte(adoptYAML), "-n", ns, "apply", "-f", "-"); err != nil {
			t.Fatalf("kubectl apply: %v\n%s", err, out)
		}
		mustContain(t, "rollout status", kubectl(t, "-n", ns, "rollout", "status", "sts/web", "--timeout=30s"), "roll")
	}
	// pods lists "name=uid:controller-uid" of web-0 and web-1.
	pods := func() string {
		return kubectl(t, "-n", ns, "get", "pods", "web-0", "web-1", "-o",
			`jsonpath={range .items[*]}{.metadata.name}={.metadata.uid}:{.metadata.ownerReferences[?(@.controller==true)].uid} {end}`)
	}
	revisionOwners := func() string {
		return kubectl(t, "-n", ns, "get", "controllerrevisions", "-o", `jsonpath={range .items[*]}{.metadata.name}:{.metadata.ownerReferences[*].uid} {end}`)
	}

	apply()
	oldSet := kubectl(t, "-n", ns, "get", "sts", "web", "-o", "jsonpath={.metadata.uid}")
	before := pods()
	uid0, uid1 := field(before, "web-0=", ":"), field(before, "web-1=", ":")
	if uid0 == "" || uid1 == "" || !strings.Contains(before, ":"+oldSet) {
		t.Fatalf("pods before: %q (set %s)", before, oldSet)
	}
	revision := strings.TrimSpace(strings.Split(revisionOwners(), ":")[0])

	kubectl(t, "-n", ns, "delete", "sts", "web", "--cascade=orphan", "--timeout=30s")
	orphaned := "web-0=" + uid0 + ": web-1=" + uid1 + ":"
	eventually(t, 15*time.Second, "pods left without an owner", func() (bool, error) {
		return pods() == orphaned, nil
	})
	if got := revisionOwners(); got != revision+":" {
		t.Fatalf("revisions after the orphaning delete: %q, want %s left without an owner", got, revision)
	}

	apply()
	newSet := kubectl(t, "-n", ns, "get", "sts", "web", "-o", "jsonpath={.metadata.uid}")
	if newSet == oldSet || newSet == "" {
		t.Fatalf("set uid %q after re-creating (was %q)", newSet, oldSet)
	}
	adopted := "web-0=" + uid0 + ":" + newSet + " web-1=" + uid1 + ":" + newSet
	eventually(t, 15*time.Second, "the same pods adopted by the new set", func() (bool, error) {
		return pods() == adopted, nil
	})
	if got := revisionOwners(); got != revision+":"+newSet {
		t.Fatalf("revisions after re-creating: %q, want %s adopted and no other", got, revision)
	}
	mustContain(t, "status", kubectl(t, "-n", ns, "get", "sts", "web", "-o", "jsonpath={.status.readyReplicas}/{.status.updatedReplicas}/{.status.updateRevision}"), "2/2/"+revision)
	if got := pods(); got != adopted {
		t.Fatalf("pods after the rollout settled: %q, want %q (no pod replaced)", got, adopted)
	}

	kubectl(t, "-n", ns, "label", "pod", "web-1", "app=released", "--overwrite")
	eventually(t, 15*time.Second, "web-1 released and no longer counted", func() (bool, error) {
		return pods() == "web-0="+uid0+":"+newSet+" web-1="+uid1+":" &&
			kubectl(t, "-n", ns, "get", "sts", "web", "-o", "jsonpath={.status.replicas}") == "1", nil
	})
	eventually(t, 15*time.Second, "a warning that web-1's name is taken", func() (bool, error) {
		return strings.Contains(kubectl(t, "-n", ns, "get", "events", "--field-selector", "involvedObject.name=web,reason=FailedCreate", "-o", "jsonpath={.items[*].message}"), "web-1"), nil
	})

	// Not kubectl's own wait: the set makes a new web-1 so soon that kubectl, listing
	// after the old one went, would find the new one and wait for it to go as well.
	kubectl(t, "-n", ns, "delete", "pod", "web-1", "--wait=false")
	eventually(t, 20*time.Second, "web-1 replaced by the set", func() (bool, error) {
		got := pods()
		uid := field(got, "web-1=", ":")
		return uid != "" && uid != uid1 && strings.HasSuffix(got, ":"+newSet), nil
	})
	mustContain(t, "rollout status after the replacement", kubectl(t, "-n", ns, "rollout", "status", "sts/web", "--timeout=30s"), "roll")
	if got := field(pods(), "web-0=", ":"); got != uid0 {
		t.Fatalf("web-0 uid %s, want %s kept throughout", got, uid0)
	}
}

// field returns what follows prefix in s up to end (or the end of s).
func field(s, prefix, end string) string {
	_, rest, ok := strings.Cut(s, prefix)
	if !ok {
		return ""
	}
	v, _, _ := strings.Cut(rest, end)
	return v
}
