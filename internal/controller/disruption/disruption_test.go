package disruption

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/tools/record"
	"k8s.io/utils/ptr"
)

// world is a Deployment of `replicas` with one ReplicaSet and the given pods
// (true: ready), and a budget selecting them.
func world(replicas int32, ready []bool, spec policyv1.PodDisruptionBudgetSpec) []runtime.Object {
	d := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default", UID: "d-uid"}, Spec: appsv1.DeploymentSpec{Replicas: ptr.To(replicas)}}
	rs := &appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Name: "web-1", Namespace: "default", UID: "rs-uid",
		OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(d, appsv1.SchemeGroupVersion.WithKind("Deployment"))}},
		Spec: appsv1.ReplicaSetSpec{Replicas: ptr.To(replicas)}}
	spec.Selector = &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}}
	objs := []runtime.Object{d, rs, &policyv1.PodDisruptionBudget{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default", Generation: 1}, Spec: spec}}
	for i, r := range ready {
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("web-%d", i), Namespace: "default", UID: types.UID(fmt.Sprint(i)), Labels: map[string]string{"app": "web"},
			OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(rs, appsv1.SchemeGroupVersion.WithKind("ReplicaSet"))}}}
		if r {
			p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}
		}
		objs = append(objs, p)
	}
	return objs
}

// syncPDB runs one sync over objs and returns the budget's status.
func syncPDB(t *testing.T, now time.Time, objs ...runtime.Object) (policyv1.PodDisruptionBudgetStatus, error) {
	t.Helper()
	client := fake.NewClientset(objs...)
	f := informers.NewSharedInformerFactory(client, 0)
	c := New(client, Informers{
		PDBs: f.Policy().V1().PodDisruptionBudgets(), Pods: f.Core().V1().Pods(), RCs: f.Core().V1().ReplicationControllers(),
		ReplicaSets: f.Apps().V1().ReplicaSets(), Deployments: f.Apps().V1().Deployments(), StatefulSets: f.Apps().V1().StatefulSets(),
	}, record.NewFakeRecorder(10), slog.New(slog.DiscardHandler))
	c.now = func() time.Time { return now }
	for _, o := range objs {
		var err error
		switch o := o.(type) {
		case *appsv1.Deployment:
			err = f.Apps().V1().Deployments().Informer().GetIndexer().Add(o)
		case *appsv1.ReplicaSet:
			err = f.Apps().V1().ReplicaSets().Informer().GetIndexer().Add(o)
		case *corev1.Pod:
			err = f.Core().V1().Pods().Informer().GetIndexer().Add(o)
		case *policyv1.PodDisruptionBudget:
			err = f.Policy().V1().PodDisruptionBudgets().Informer().GetIndexer().Add(o)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	serr := c.sync(context.Background(), "default/web")
	pdb, err := client.PolicyV1().PodDisruptionBudgets("default").Get(context.Background(), "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return pdb.Status, serr
}

func counts(st policyv1.PodDisruptionBudgetStatus) string {
	return fmt.Sprintf("healthy %d/%d expected %d allowed %d", st.CurrentHealthy, st.DesiredHealthy, st.ExpectedPods, st.DisruptionsAllowed)
}

func TestBudgetStatus(t *testing.T) {
	intOr := func(v intstr.IntOrString) *intstr.IntOrString { return &v }
	for _, tc := range []struct {
		name     string
		replicas int32
		ready    []bool
		spec     policyv1.PodDisruptionBudgetSpec
		want     string
	}{
		{"minAvailable int counts pods", 3, []bool{true, true, true}, policyv1.PodDisruptionBudgetSpec{MinAvailable: intOr(intstr.FromInt32(2))}, "healthy 3/2 expected 3 allowed 1"},
		{"unready pods are not healthy", 3, []bool{true, false, true}, policyv1.PodDisruptionBudgetSpec{MinAvailable: intOr(intstr.FromInt32(2))}, "healthy 2/2 expected 3 allowed 0"},
		{"maxUnavailable counts the deployment's replicas", 4, []bool{true, true, true}, policyv1.PodDisruptionBudgetSpec{MaxUnavailable: intOr(intstr.FromString("50%"))}, "healthy 3/2 expected 4 allowed 1"},
		{"minAvailable percent rounds up", 3, []bool{true, true, true}, policyv1.PodDisruptionBudgetSpec{MinAvailable: intOr(intstr.FromString("50%"))}, "healthy 3/2 expected 3 allowed 1"},
		{"no pods, no disruption", 0, nil, policyv1.PodDisruptionBudgetSpec{MaxUnavailable: intOr(intstr.FromInt32(1))}, "healthy 0/0 expected 0 allowed 0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st, err := syncPDB(t, time.Now(), world(tc.replicas, tc.ready, tc.spec)...)
			if err != nil {
				t.Fatal(err)
			}
			if got := counts(st); got != tc.want || st.ObservedGeneration != 1 {
				t.Fatalf("%s (generation %d), want %s", got, st.ObservedGeneration, tc.want)
			}
			cond := apimeta.FindStatusCondition(st.Conditions, policyv1.DisruptionAllowedCondition)
			wantReason := policyv1.InsufficientPodsReason
			if st.DisruptionsAllowed > 0 {
				wantReason = policyv1.SufficientPodsReason
			}
			if cond == nil || cond.Reason != wantReason {
				t.Fatalf("condition %+v, want reason %s", cond, wantReason)
			}
		})
	}
}

func TestEvictedPodsCountAsDisruptedUntilTheTimeout(t *testing.T) {
	now := time.Now()
	objs := world(3, []bool{true, true, true}, policyv1.PodDisruptionBudgetSpec{MinAvailable: ptr.To(intstr.FromInt32(1))})
	pdb := objs[2].(*policyv1.PodDisruptionBudget)
	pdb.Status.DisruptedPods = map[string]metav1.Time{"web-0": metav1.NewTime(now.Add(-time.Minute)), "web-1": metav1.NewTime(now.Add(-3 * time.Minute))}
	st, err := syncPDB(t, now, objs...)
	if err != nil {
		t.Fatal(err)
	}
	if counts(st) != "healthy 2/1 expected 3 allowed 1" || len(st.DisruptedPods) != 1 {
		t.Fatalf("%s, disrupted %v; want web-0 still disrupted and web-1 timed out", counts(st), st.DisruptedPods)
	}
}

func TestBudgetOverPodsOfAnUnknownControllerAllowsNothing(t *testing.T) {
	objs := world(3, []bool{true, true, true}, policyv1.PodDisruptionBudgetSpec{MaxUnavailable: ptr.To(intstr.FromInt32(1))})
	for _, o := range objs {
		if p, ok := o.(*corev1.Pod); ok {
			p.OwnerReferences[0].Kind = "Job"
		}
	}
	pdb := objs[2].(*policyv1.PodDisruptionBudget)
	pdb.Status.DisruptionsAllowed = 5
	st, err := syncPDB(t, time.Now(), objs...)
	if err == nil {
		t.Fatal("sync succeeded")
	}
	cond := apimeta.FindStatusCondition(st.Conditions, policyv1.DisruptionAllowedCondition)
	if st.DisruptionsAllowed != 0 || cond == nil || cond.Reason != policyv1.SyncFailedReason {
		t.Fatalf("allowed %d, condition %+v", st.DisruptionsAllowed, cond)
	}
}
