package deployment

import (
	"fmt"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
)

func TestFirstSyncCreatesTheReplicaSetWithHashRevisionAndChangeCause(t *testing.T) {
	d := newDeployment(3, "busybox:1")
	d.Annotations = map[string]string{"kubernetes.io/change-cause": "first", lastAppliedAnnotation: "{}"}
	f := newFixture(t, d)
	f.sync()
	rss := f.replicaSets()
	if len(rss) != 1 {
		t.Fatalf("%d replica sets", len(rss))
	}
	rs := rss[0]
	hash := TemplateHash(&d.Spec.Template, nil)
	if rs.Name != "web-"+hash || rs.Labels[HashLabel] != hash || rs.Spec.Selector.MatchLabels[HashLabel] != hash || rs.Spec.Template.Labels[HashLabel] != hash {
		t.Fatalf("replica set %s labels %v selector %v", rs.Name, rs.Labels, rs.Spec.Selector)
	}
	if *rs.Spec.Replicas != 3 {
		t.Fatalf("replicas %d, want 3", *rs.Spec.Replicas)
	}
	want := map[string]string{RevisionAnnotation: "1", "kubernetes.io/change-cause": "first", DesiredReplicasAnnotation: "3", MaxReplicasAnnotation: "4"}
	for k, v := range want {
		if rs.Annotations[k] != v {
			t.Errorf("annotation %s = %q, want %q", k, rs.Annotations[k], v)
		}
	}
	if _, ok := rs.Annotations[lastAppliedAnnotation]; ok {
		t.Error("last-applied-configuration copied to the replica set")
	}
	if ref := metav1.GetControllerOf(rs); ref == nil || ref.UID != d.UID || !*ref.BlockOwnerDeletion {
		t.Errorf("controller ref %+v", ref)
	}
	got := f.deployment()
	if got.Annotations[RevisionAnnotation] != "1" {
		t.Errorf("deployment revision %q", got.Annotations[RevisionAnnotation])
	}
	if c := getCondition(got.Status, appsv1.DeploymentProgressing); c == nil || c.Reason != NewRSReason {
		t.Errorf("progressing %+v", c)
	}
	if e := <-f.events.Events; e != "Normal ScalingReplicaSet Scaled up replica set web-"+hash+" from 0 to 3" {
		t.Errorf("event %q", e)
	}
}

// simulate plays the ReplicaSet controller and the kubelets between syncs: every
// ReplicaSet has as many pods as it asks for, and pods become available one round
// after they were created.
func simulate(f *fixture) {
	for _, rs := range f.replicaSets() {
		n := *rs.Spec.Replicas
		rs.Status.AvailableReplicas = min(n, rs.Status.Replicas)
		rs.Status.ReadyReplicas = rs.Status.AvailableReplicas
		rs.Status.Replicas = n
		rs.Status.ObservedGeneration = rs.Generation
		f.update(rs)
	}
}

func TestRollingUpdateKeepsWithinSurgeAndUnavailabilityAtEveryStep(t *testing.T) {
	for _, tc := range []struct {
		replicas           int32
		surge, unavailable intstr.IntOrString
		maxTotal, minAvail int32
	}{
		{10, intstr.FromInt32(3), intstr.FromInt32(2), 13, 8},
		{4, intstr.FromString("25%"), intstr.FromString("25%"), 5, 3},
		{5, intstr.FromInt32(0), intstr.FromInt32(1), 5, 4},
		{3, intstr.FromInt32(1), intstr.FromInt32(0), 4, 3},
		{1, intstr.FromString("10%"), intstr.FromString("10%"), 2, 0}, // surge rounds up to 1
	} {
		t.Run(fmt.Sprintf("%d-%s-%s", tc.replicas, tc.surge.String(), tc.unavailable.String()), func(t *testing.T) {
			d := newDeployment(tc.replicas, "busybox:2")
			d.Spec.Strategy.RollingUpdate = &appsv1.RollingUpdateDeployment{MaxSurge: &tc.surge, MaxUnavailable: &tc.unavailable}
			old := ownedRS(d, "busybox:1", 1, tc.replicas, time.Hour)
			f := newFixture(t, d, old)
			for step := 0; ; step++ {
				if step > 50 {
					t.Fatal("rollout did not finish in 50 steps")
				}
				f.sync()
				var total, available int32
				for _, rs := range f.replicaSets() {
					total += *rs.Spec.Replicas
					available += rs.Status.AvailableReplicas
				}
				if total > tc.maxTotal {
					t.Fatalf("step %d: %d replicas asked for, more than %d", step, total, tc.maxTotal)
				}
				if available < tc.minAvail {
					t.Fatalf("step %d: %d available, fewer than %d", step, available, tc.minAvail)
				}
				simulate(f)
				st := f.deployment().Status
				if complete(d, &st) {
					break
				}
			}
			f.sync()
			rss := f.replicaSets()
			if len(rss) != 2 || *rss[0].Spec.Replicas != 0 || *rss[1].Spec.Replicas != tc.replicas || rss[1].Annotations[RevisionAnnotation] != "2" {
				t.Fatalf("after the rollout: old %d, new %d (revision %s)", *rss[0].Spec.Replicas, *rss[1].Spec.Replicas, rss[1].Annotations[RevisionAnnotation])
			}
			got := f.deployment()
			if c := getCondition(got.Status, appsv1.DeploymentProgressing); c == nil || c.Reason != NewRSAvailableReason {
				t.Fatalf("progressing %+v", c)
			}
			if c := getCondition(got.Status, appsv1.DeploymentAvailable); c == nil || c.Status != corev1.ConditionTrue || c.Reason != AvailableReason {
				t.Fatalf("available %+v", c)
			}
			if s := got.Status; s.UpdatedReplicas != tc.replicas || s.Replicas != tc.replicas || s.AvailableReplicas != tc.replicas || s.UnavailableReplicas != 0 || got.Annotations[RevisionAnnotation] != "2" {
				t.Fatalf("status %+v revision %s", s, got.Annotations[RevisionAnnotation])
			}
		})
	}
}

func TestRollbackReusesTheReplicaSetWithTheSameTemplate(t *testing.T) {
	d := newDeployment(3, "busybox:1") // kubectl rollout undo wrote revision 1's template back
	d.Annotations = map[string]string{RevisionAnnotation: "2"}
	first := ownedRS(d, "busybox:1", 1, 0, 2*time.Hour)
	second := ownedRS(d, "busybox:2", 2, 3, time.Hour)
	f := newFixture(t, d, first, second)
	for step := 0; ; step++ {
		if step > 20 {
			t.Fatal("rollback did not finish in 20 steps")
		}
		f.sync()
		simulate(f)
		if st := f.deployment().Status; complete(d, &st) {
			break
		}
	}
	rss := f.replicaSets()
	if len(rss) != 2 {
		t.Fatalf("%d replica sets, want the 2 there were", len(rss))
	}
	if rss[0].Name != first.Name || rss[0].Annotations[RevisionAnnotation] != "3" || rss[0].Annotations[RevisionHistoryAnnotation] != "1" {
		t.Fatalf("first replica set %s: annotations %v", rss[0].Name, rss[0].Annotations)
	}
	if *rss[0].Spec.Replicas != 3 || *rss[1].Spec.Replicas != 0 {
		t.Fatalf("replicas: first %d, second %d", *rss[0].Spec.Replicas, *rss[1].Spec.Replicas)
	}
	if got := f.deployment().Annotations[RevisionAnnotation]; got != "3" {
		t.Fatalf("deployment revision %q, want 3", got)
	}
}

func TestCompleteRolloutDeletesHistoryBeyondTheLimit(t *testing.T) {
	d := newDeployment(2, "busybox:4")
	d.Spec.RevisionHistoryLimit = ptr.To[int32](1)
	d.Annotations = map[string]string{RevisionAnnotation: "4"}
	d.Status = appsv1.DeploymentStatus{ObservedGeneration: 1, Replicas: 2, UpdatedReplicas: 2, AvailableReplicas: 2, ReadyReplicas: 2}
	r1 := ownedRS(d, "busybox:1", 1, 0, 4*time.Hour)
	r2 := ownedRS(d, "busybox:2", 2, 0, 3*time.Hour)
	r3 := ownedRS(d, "busybox:3", 3, 0, 2*time.Hour)
	r4 := ownedRS(d, "busybox:4", 4, 2, time.Hour)
	f := newFixture(t, d, r1, r2, r3, r4)
	f.sync()
	var names []string
	for _, rs := range f.replicaSets() {
		names = append(names, rs.Annotations[RevisionAnnotation])
	}
	if fmt.Sprint(names) != "[3 4]" {
		t.Fatalf("revisions left %v, want [3 4]", names)
	}
}

func TestPausedDeploymentScalesButDoesNotRollOut(t *testing.T) {
	d := newDeployment(5, "busybox:2")
	d.Spec.Paused = true
	old := ownedRS(newDeployment(3, ""), "busybox:1", 1, 3, time.Hour)
	f := newFixture(t, d, old)
	f.sync()
	rss := f.replicaSets()
	if len(rss) != 1 || *rss[0].Spec.Replicas != 5 {
		t.Fatalf("paused: %d replica sets, first with %d replicas", len(rss), *rss[0].Spec.Replicas)
	}
	if c := getCondition(f.deployment().Status, appsv1.DeploymentProgressing); c == nil || c.Reason != PausedReason || c.Status != corev1.ConditionUnknown {
		t.Fatalf("progressing %+v", c)
	}
	d = f.deployment()
	d.Spec.Paused = false
	f.update(d)
	f.sync()
	if len(f.replicaSets()) != 2 {
		t.Fatal("resumed deployment did not roll out")
	}
}

func TestScalingMidRolloutIsProportional(t *testing.T) {
	d := newDeployment(10, "busybox:2")
	d.Spec.Strategy.RollingUpdate = &appsv1.RollingUpdateDeployment{MaxSurge: ptr.To(intstr.FromInt32(3)), MaxUnavailable: ptr.To(intstr.FromInt32(2))}
	old := ownedRS(d, "busybox:1", 1, 8, time.Hour)
	newer := ownedRS(d, "busybox:2", 2, 5, time.Minute)
	newer.Status = appsv1.ReplicaSetStatus{Replicas: 5}
	d.Spec.Replicas = ptr.To[int32](20)
	d.Spec.Strategy.RollingUpdate.MaxSurge = ptr.To(intstr.FromInt32(5))
	f := newFixture(t, d, old, newer)
	f.sync()
	rss := f.replicaSets()
	// 25 allowed, 13 there: 12 more, split 8:5 -> +7 and +5.
	if *rss[0].Spec.Replicas != 15 || *rss[1].Spec.Replicas != 10 {
		t.Fatalf("old %d, new %d; want 15 and 10", *rss[0].Spec.Replicas, *rss[1].Spec.Replicas)
	}
	if rss[0].Annotations[DesiredReplicasAnnotation] != "20" || rss[1].Annotations[MaxReplicasAnnotation] != "25" {
		t.Fatalf("annotations %v", rss[0].Annotations)
	}
}

func TestStuckRolloutExceedsItsProgressDeadline(t *testing.T) {
	d := newDeployment(2, "busybox:2")
	old := ownedRS(d, "busybox:1", 1, 2, time.Hour)
	f := newFixture(t, d, old)
	f.sync() // creates the new replica set, whose pods never become available
	f.sync()
	f.clock = f.clock.Add(11 * time.Minute)
	f.sync()
	c := getCondition(f.deployment().Status, appsv1.DeploymentProgressing)
	if c == nil || c.Reason != TimedOutReason || c.Status != corev1.ConditionFalse || !strings.Contains(c.Message, "has timed out progressing") {
		t.Fatalf("progressing %+v", c)
	}
}

func TestRecreateWaitsForOldPodsToGo(t *testing.T) {
	d := newDeployment(2, "busybox:2")
	d.Spec.Strategy = appsv1.DeploymentStrategy{Type: appsv1.RecreateDeploymentStrategyType}
	old := ownedRS(d, "busybox:1", 1, 2, time.Hour)
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "old-pod", Namespace: "default", Labels: old.Spec.Template.Labels,
			OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(old, appsv1.SchemeGroupVersion.WithKind("ReplicaSet"))}},
		Status: corev1.PodStatus{Phase: corev1.PodRunning},
	}
	f := newFixture(t, d, old, pod)
	f.sync()
	if rss := f.replicaSets(); len(rss) != 1 || *rss[0].Spec.Replicas != 0 {
		t.Fatal("old replica set not scaled to zero first")
	}
	old = f.replicaSets()[0]
	old.Status = appsv1.ReplicaSetStatus{}
	f.update(old)
	f.sync()
	if len(f.replicaSets()) != 1 {
		t.Fatal("new replica set created while an old pod still runs")
	}
	if err := f.client.CoreV1().Pods("default").Delete(t.Context(), "old-pod", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	f.reload()
	f.sync()
	rss := f.replicaSets()
	if len(rss) != 2 || *rss[1].Spec.Replicas != 2 {
		t.Fatalf("after the old pods went: %d replica sets", len(rss))
	}
}

func TestMaxSurgeAndMaxUnavailableResolve(t *testing.T) {
	for _, tc := range []struct {
		replicas           int32
		surge, unavailable intstr.IntOrString
		wantS, wantU       int32
	}{
		{10, intstr.FromString("25%"), intstr.FromString("25%"), 3, 2},
		{3, intstr.FromString("25%"), intstr.FromString("25%"), 1, 0},
		{1, intstr.FromInt32(0), intstr.FromString("10%"), 0, 1}, // both zero: one may be unavailable
		{2, intstr.FromInt32(0), intstr.FromInt32(5), 0, 2},      // never more than replicas
	} {
		d := newDeployment(tc.replicas, "x")
		d.Spec.Strategy.RollingUpdate = &appsv1.RollingUpdateDeployment{MaxSurge: &tc.surge, MaxUnavailable: &tc.unavailable}
		if s, u := maxSurge(d), maxUnavailable(d); s != tc.wantS || u != tc.wantU {
			t.Errorf("%d replicas, surge %s, unavailable %s: got %d/%d, want %d/%d", tc.replicas, tc.surge.String(), tc.unavailable.String(), s, u, tc.wantS, tc.wantU)
		}
	}
}

func TestTemplateHashDependsOnTemplateAndCollisionCount(t *testing.T) {
	a, b := template("busybox:1"), template("busybox:2")
	if TemplateHash(&a, nil) == TemplateHash(&b, nil) || TemplateHash(&a, nil) == TemplateHash(&a, ptr.To[int32](1)) {
		t.Fatal("hash does not tell templates or collision counts apart")
	}
	if TemplateHash(&a, nil) != TemplateHash(new(template("busybox:1")), nil) {
		t.Fatal("hash is not deterministic")
	}
}
