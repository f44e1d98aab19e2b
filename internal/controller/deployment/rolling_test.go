package deployment

import (
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	core "k8s.io/client-go/testing"
	"k8s.io/utils/ptr"
)

// An old ReplicaSet just scaled down still shows its pods as available until the
// ReplicaSet controller deletes the extra ones: the next sync must not take that as
// unhealthy replicas to clean up and scale it back up past maxSurge (the e2e flake:
// 3 new + 2 old pods asked for with a bound of 4).
func TestRollingUpdateDoesNotScaleUpAnOldReplicaSetWhoseStatusIsBehind(t *testing.T) {
	d := newDeployment(3, "busybox:2")
	d.Spec.Strategy.RollingUpdate.MaxSurge = ptr.To(intstr.FromInt32(1))
	d.Spec.Strategy.RollingUpdate.MaxUnavailable = ptr.To(intstr.FromInt32(1))
	d.Annotations = map[string]string{RevisionAnnotation: "2"}
	oldRS := ownedRS(d, "busybox:1", 1, 1, 60e9)
	oldRS.Status.Replicas, oldRS.Status.ReadyReplicas, oldRS.Status.AvailableReplicas = 2, 2, 2 // scaled 2 -> 1, pods not gone yet
	newRS := ownedRS(d, "busybox:2", 2, 3, 0)
	newRS.Status.AvailableReplicas, newRS.Status.ReadyReplicas = 2, 2
	f := newFixture(t, d, oldRS, newRS)

	f.sync()
	// Every write counts, not only the end state: a watcher sees each one.
	spec := map[string]int32{oldRS.Name: 1, newRS.Name: 3}
	for _, a := range f.client.Actions() {
		u, ok := a.(core.UpdateAction)
		if !ok || a.GetResource().Resource != "replicasets" || a.GetSubresource() != "" {
			continue
		}
		rs := u.GetObject().(*appsv1.ReplicaSet)
		if rs.Name == oldRS.Name && *rs.Spec.Replicas > spec[rs.Name] {
			t.Errorf("old replica set scaled up from %d to %d while its status was behind", spec[rs.Name], *rs.Spec.Replicas)
		}
		spec[rs.Name] = *rs.Spec.Replicas
		if total := spec[oldRS.Name] + spec[newRS.Name]; total > 4 {
			t.Errorf("replica sets ask for %d pods, more than spec.replicas+maxSurge = 4", total)
		}
	}

	// Once its status catches up, the rollout goes on: 3 available, 2 needed.
	rs := f.replicaSets()[0]
	rs.Status.Replicas, rs.Status.ReadyReplicas, rs.Status.AvailableReplicas = 1, 1, 1
	f.update(rs)
	f.sync()
	if got := *f.replicaSets()[0].Spec.Replicas; got != 0 {
		t.Errorf("old replica set has %d replicas after its status caught up, want 0", got)
	}
}
