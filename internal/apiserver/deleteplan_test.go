package apiserver

import (
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

func TestPlanDeleteOfPods(t *testing.T) {
	now := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	ptr := func(n int64) *int64 { return &n }
	at := func(d time.Duration) *metav1.Time { t := metav1.NewTime(now.Add(d)); return &t }
	pod := func(node string, phase corev1.PodPhase, tgps *int64) *corev1.Pod {
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns"},
			Spec: corev1.PodSpec{NodeName: node, TerminationGracePeriodSeconds: tgps}, Status: corev1.PodStatus{Phase: phase}}
	}
	going := func(ts *metav1.Time, grace int64, finalizers ...string) *corev1.Pod {
		p := pod("n1", corev1.PodRunning, nil)
		p.DeletionTimestamp, p.DeletionGracePeriodSeconds, p.Finalizers = ts, &grace, finalizers
		return p
	}
	stopped := func(p *corev1.Pod) *corev1.Pod { p.Status.Phase = corev1.PodFailed; return p }
	withFinalizer := pod("n1", corev1.PodRunning, nil)
	withFinalizer.Finalizers = []string{"example.com/hold"}
	for _, tt := range []struct {
		name      string
		pod       *corev1.Pod
		opts      metav1.DeleteOptions
		want      deletion
		wantTS    *metav1.Time
		wantGrace *int64
	}{
		{"bound and running: the pod's own grace period", pod("n1", corev1.PodRunning, ptr(10)), metav1.DeleteOptions{}, deleteMark, at(10 * time.Second), ptr(10)},
		{"no terminationGracePeriodSeconds: 30 s", pod("n1", corev1.PodPending, nil), metav1.DeleteOptions{}, deleteMark, at(30 * time.Second), ptr(30)},
		{"the DELETE's grace period wins", pod("n1", corev1.PodRunning, ptr(10)), metav1.DeleteOptions{GracePeriodSeconds: ptr(3)}, deleteMark, at(3 * time.Second), ptr(3)},
		{"grace period 0: marked for the kubelet, then gone", pod("n1", corev1.PodRunning, ptr(10)), metav1.DeleteOptions{GracePeriodSeconds: ptr(0)}, deleteAfterMark, at(0), ptr(0)},
		{"negative grace period counts as 1", pod("n1", corev1.PodRunning, nil), metav1.DeleteOptions{GracePeriodSeconds: ptr(-5)}, deleteMark, at(time.Second), ptr(1)},
		{"unbound: at once", pod("", corev1.PodPending, ptr(10)), metav1.DeleteOptions{}, deleteNow, nil, nil},
		{"succeeded: at once", pod("n1", corev1.PodSucceeded, nil), metav1.DeleteOptions{}, deleteNow, nil, nil},
		{"failed: at once", pod("n1", corev1.PodFailed, nil), metav1.DeleteOptions{}, deleteNow, nil, nil},
		{"already going, asked again: unchanged", going(at(20*time.Second), 30), metav1.DeleteOptions{}, deletePending, at(20 * time.Second), ptr(30)},
		{"already going, asked longer: unchanged", going(at(20*time.Second), 30), metav1.DeleteOptions{GracePeriodSeconds: ptr(60)}, deletePending, at(20 * time.Second), ptr(30)},
		{"already going, shortened", going(at(20*time.Second), 30), metav1.DeleteOptions{GracePeriodSeconds: ptr(25)}, deleteMark, at(15 * time.Second), ptr(25)},
		{"already going, shortened past now: 1 s from now", going(at(20*time.Second), 30), metav1.DeleteOptions{GracePeriodSeconds: ptr(5)}, deleteMark, at(0), ptr(1)},
		{"forced while going: marked for the kubelet, then gone", going(at(20*time.Second), 30), metav1.DeleteOptions{GracePeriodSeconds: ptr(0)}, deleteAfterMark, at(0), ptr(0)},
		{"the kubelet's final delete, its pod finished", stopped(going(at(20*time.Second), 30)), metav1.DeleteOptions{GracePeriodSeconds: ptr(0)}, deleteNow, nil, nil},
		{"the kubelet's final delete, finalizers hold it", going(at(20*time.Second), 30, "example.com/hold"), metav1.DeleteOptions{GracePeriodSeconds: ptr(0)}, deleteMark, at(0), ptr(0)},
		{"marked with grace 0, asked again: goes", going(at(0), 0), metav1.DeleteOptions{}, deleteNow, nil, nil},
		{"finalizers and a grace period: both", withFinalizer, metav1.DeleteOptions{}, deleteMark, at(30 * time.Second), ptr(30)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p := tt.pod.DeepCopy()
			got := planDelete(p, tt.opts, now)
			if got != tt.want {
				t.Fatalf("plan %v, want %v", got, tt.want)
			}
			if tt.wantTS == nil {
				return
			}
			if p.DeletionTimestamp == nil || !p.DeletionTimestamp.Equal(tt.wantTS) {
				t.Errorf("deletionTimestamp %v, want %v", p.DeletionTimestamp, tt.wantTS)
			}
			if p.DeletionGracePeriodSeconds == nil || *p.DeletionGracePeriodSeconds != *tt.wantGrace {
				t.Errorf("deletionGracePeriodSeconds %v, want %d", p.DeletionGracePeriodSeconds, *tt.wantGrace)
			}
		})
	}
}

func TestPlanDeleteWithFinalizers(t *testing.T) {
	now := time.Now()
	fg, orphan, bg := metav1.DeletePropagationForeground, metav1.DeletePropagationOrphan, metav1.DeletePropagationBackground
	cm := func(finalizers ...string) *corev1.ConfigMap {
		return &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "c", Namespace: "ns", Finalizers: finalizers}}
	}
	for _, tt := range []struct {
		name string
		obj  runtime.Object
		opts metav1.DeleteOptions
		want deletion
		fin  []string
	}{
		{"no finalizers: at once", cm(), metav1.DeleteOptions{}, deleteNow, nil},
		{"own finalizer holds it", cm("example.com/x"), metav1.DeleteOptions{}, deleteMark, []string{"example.com/x"}},
		{"foreground adds its finalizer", cm(), metav1.DeleteOptions{PropagationPolicy: &fg}, deleteMark, []string{metav1.FinalizerDeleteDependents}},
		{"orphan replaces foreground", cm(metav1.FinalizerDeleteDependents), metav1.DeleteOptions{PropagationPolicy: &orphan}, deleteMark, []string{metav1.FinalizerOrphanDependents}},
		{"background drops both", cm(metav1.FinalizerOrphanDependents), metav1.DeleteOptions{PropagationPolicy: &bg}, deleteNow, nil},
		{"a namespace waits for its content", &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "n"}}, metav1.DeleteOptions{}, deleteMark, []string{"kubernetes"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			obj := tt.obj.DeepCopyObject()
			if got := planDelete(obj, tt.opts, now); got != tt.want {
				t.Fatalf("plan %v, want %v", got, tt.want)
			}
			m := obj.(metav1.Object)
			if len(m.GetFinalizers()) != len(tt.fin) || (len(tt.fin) > 0 && m.GetFinalizers()[0] != tt.fin[0]) {
				t.Errorf("finalizers %v, want %v", m.GetFinalizers(), tt.fin)
			}
			if tt.want == deleteMark && (m.GetDeletionTimestamp() == nil || *m.GetDeletionGracePeriodSeconds() != 0) {
				t.Errorf("marked %v with grace %v, want now with 0", m.GetDeletionTimestamp(), m.GetDeletionGracePeriodSeconds())
			}
		})
	}
}
