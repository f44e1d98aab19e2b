package controller

import (
	"strings"
	"testing"
	"time"
)

const dbYAML = `apiVersion: v1
kind: Service
metadata: {name: db}
spec:
  clusterIP: None
  selector: {app: db}
  ports: [{port: 5432}]
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db}
spec:
  serviceName: db
  replicas: 3
  selector:
    matchLabels: {app: db}
  template:
    metadata:
      labels: {app: db}
    spec:
      containers:
      - {name: c, image: busybox:1.36, command: [sleep, "3600"]}
  volumeClaimTemplates:
  - metadata: {name: data}
    spec:
      accessModes: [ReadWriteOnce]
      resources: {requests: {storage: 1Gi}}
`

func TestStatefulSetPodsKeepTheirNamesAndClaims(t *testing.T) {
	need(t)
	cs := client(t)
	ns := namespace(t, "sts")
	n := startNode(t, cs, uniq("node"))
	n.serve(t, ns)
	if out, err := kubectlRun(t, []byte(dbYAML), "-n", ns, "apply", "-f", "-"); err != nil {
		t.Fatalf("kubectl apply: %v\n%s", err, out)
	}
	mustContain(t, "rollout status", kubectl(t, "-n", ns, "rollout", "status", "sts/db", "--timeout=30s"), "roll")
	mustContain(t, "pods", kubectl(t, "-n", ns, "get", "pods", "-l", "app=db", "-o", "jsonpath={.items[*].metadata.name}"), "db-0 db-1 db-2")
	mustContain(t, "claims", kubectl(t, "-n", ns, "get", "pvc", "-o", "jsonpath={.items[*].metadata.name}"), "data-db-0 data-db-1 data-db-2")
	mustContain(t, "hostname", kubectl(t, "-n", ns, "get", "pod", "db-1", "-o", "jsonpath={.spec.hostname}.{.spec.subdomain}"), "db-1.db")
	mustContain(t, "headless endpoints", kubectl(t, "-n", ns, "get", "endpoints", "db", "-o", "jsonpath={.subsets[0].addresses[*].hostname}"), "db-0 db-1 db-2")

	kubectl(t, "-n", ns, "set", "image", "sts/db", "c=busybox:1.37")
	mustContain(t, "rollout status after set image", kubectl(t, "-n", ns, "rollout", "status", "sts/db", "--timeout=30s"), "roll")
	mustContain(t, "images", kubectl(t, "-n", ns, "get", "pods", "-l", "app=db", "-o", "jsonpath={.items[*].spec.containers[0].image}"), "busybox:1.37 busybox:1.37 busybox:1.37")

	kubectl(t, "-n", ns, "scale", "sts/db", "--replicas=1")
	eventually(t, 15*time.Second, "scaled down to db-0", func() (bool, error) {
		return kubectl(t, "-n", ns, "get", "pods", "-l", "app=db", "-o", "jsonpath={.items[*].metadata.name}") == "db-0", nil
	})
	if claims := kubectl(t, "-n", ns, "get", "pvc", "-o", "name"); strings.Count(claims, "\n") != 2 {
		t.Fatalf("claims after scaling down (they are kept):\n%s", claims)
	}
}
