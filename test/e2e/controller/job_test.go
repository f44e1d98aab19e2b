package controller

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestJobsRunToCompletionOrFailure(t *testing.T) {
	need(t)
	cs := client(t)
	ns := namespace(t, "job")
	n := startNode(t, cs, uniq("node"))
	n.serve(t, ns)

	kubectl(t, "-n", ns, "create", "job", "ok", "--image=busybox:1.36", "--", "true")
	kubectl(t, "-n", ns, "wait", "--for=condition=complete", "job/ok", "--timeout=30s")
	mustContain(t, "job status", kubectl(t, "-n", ns, "get", "job", "ok", "-o", "jsonpath={.status.succeeded}/{.status.active}/{.status.conditions[?(@.type=='Complete')].reason}"), "1//CompletionsReached") // active 0 is omitted
	mustContain(t, "describe job", kubectl(t, "-n", ns, "describe", "job", "ok"), "Created pod: ok-")

	const failing = `apiVersion: batch/v1
kind: Job
metadata: {name: bad}
spec:
  backoffLimit: 0
  template:
    spec:
      restartPolicy: Never
      containers:
      - {name: c, image: busybox:1.36, command: [sh, -c, "exit 1"]}
`
	if out, err := kubectlRun(t, []byte(failing), "-n", ns, "apply", "-f", "-"); err != nil {
		t.Fatalf("kubectl apply: %v\n%s", err, out)
	}
	kubectl(t, "-n", ns, "wait", "--for=condition=failed", "job/bad", "--timeout=30s")
	mustContain(t, "failed job", kubectl(t, "-n", ns, "get", "job", "bad", "-o", "jsonpath={.status.failed}/{.status.conditions[?(@.type=='Failed')].reason}"), "1/BackoffLimitExceeded")

	const parallel = `apiVersion: batch/v1
kind: Job
metadata: {name: many}
spec:
  completions: %d
  parallelism: 3
  completionMode: Indexed
  template:
    spec:
      restartPolicy: Never
      containers:
      - {name: c, image: busybox:1.36, command: [sh, -c, "echo $JOB_COMPLETION_INDEX"]}
`
	if out, err := kubectlRun(t, fmt.Appendf(nil, parallel, 7), "-n", ns, "apply", "-f", "-"); err != nil {
		t.Fatalf("kubectl apply: %v\n%s", err, out)
	}
	kubectl(t, "-n", ns, "wait", "--for=condition=complete", "job/many", "--timeout=30s")
	mustContain(t, "indexed job", kubectl(t, "-n", ns, "get", "job", "many", "-o", "jsonpath={.status.succeeded} {.status.completedIndexes}"), "7 0-6")

	const shortLived = `apiVersion: batch/v1
kind: Job
metadata: {name: brief}
spec:
  ttlSecondsAfterFinished: 1
  template:
    spec:
      restartPolicy: Never
      containers:
      - {name: c, image: busybox:1.36, command: ["true"]}
`
	if out, err := kubectlRun(t, []byte(shortLived), "-n", ns, "apply", "-f", "-"); err != nil {
		t.Fatalf("kubectl apply: %v\n%s", err, out)
	}
	eventually(t, 15*time.Second, "finished job deleted after its TTL, with its pods", func() (bool, error) {
		out, err := kubectlRun(t, nil, "-n", ns, "get", "job,pods", "-l", "batch.kubernetes.io/job-name=brief", "-o", "name")
		if err != nil {
			return false, err
		}
		_, gerr := kubectlRun(t, nil, "-n", ns, "get", "job", "brief")
		return gerr != nil && strings.TrimSpace(out) == "", nil
	})
}
