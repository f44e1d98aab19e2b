package job

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/berth-project/berth/internal/controller/ownerref"
	"github.com/berth-project/berth/internal/controller/pods"
)

// completionIndexEnv is the variable an Indexed Job's containers find their index in.
const completionIndexEnv = "JOB_COMPLETION_INDEX"

func indexed(j *batchv1.Job) bool {
	return j.Spec.CompletionMode != nil && *j.Spec.CompletionMode == batchv1.IndexedCompletion && j.Spec.Completions != nil
}

// index is the completion index of an Indexed Job's pod.
func index(p *corev1.Pod) (int, bool) {
	v, ok := p.Annotations[batchv1.JobCompletionIndexAnnotation]
	if !ok {
		return 0, false
	}
	i, err := strconv.Atoi(v)
	return i, err == nil && i >= 0
}

// nextIndexes hands out, lowest first, the indexes with neither a succeeded nor an
// active pod; safe for the concurrent creates of one batch.
func nextIndexes(j *batchv1.Job, cs census) func() int {
	busy := maps.Clone(cs.doneIndexes)
	for _, p := range cs.active {
		if i, ok := index(p); ok {
			busy[i] = true
		}
	}
	var mu sync.Mutex
	next := 0
	return func() int {
		mu.Lock()
		defer mu.Unlock()
		for busy[next] && next < int(*j.Spec.Completions) {
			next++
		}
		busy[next] = true
		return next
	}
}

// formatIndexes writes indexes as upstream's status.completedIndexes: "0-2,4".
func formatIndexes(done map[int]bool) string {
	idx := slices.Sorted(maps.Keys(done))
	var parts []string
	for i := 0; i < len(idx); {
		k := i
		for k+1 < len(idx) && idx[k+1] == idx[k]+1 {
			k++
		}
		if k == i {
			parts = append(parts, strconv.Itoa(idx[i]))
		} else {
			parts = append(parts, fmt.Sprintf("%d-%d", idx[i], idx[k]))
		}
		i = k + 1
	}
	return strings.Join(parts, ",")
}

// createPod creates one of j's pods (for completion index i of an Indexed Job, i >= 0).
func (c *Controller) createPod(ctx context.Context, j *batchv1.Job, i int) error {
	p := pods.FromTemplate(&j.Spec.Template, j, ownerref.ControllerRef(j, Kind))
	if p.Labels == nil {
		p.Labels = map[string]string{}
	}
	p.Labels[batchv1.ControllerUidLabel], p.Labels[batchv1.JobNameLabel] = string(j.UID), j.Name
	p.Labels["controller-uid"], p.Labels["job-name"] = string(j.UID), j.Name
	if i >= 0 {
		is := strconv.Itoa(i)
		p.GenerateName = fmt.Sprintf("%s-%d-", j.Name, i)
		if p.Annotations == nil {
			p.Annotations = map[string]string{}
		}
		p.Annotations[batchv1.JobCompletionIndexAnnotation] = is
		p.Labels[batchv1.JobCompletionIndexAnnotation] = is
		if p.Spec.Hostname == "" {
			p.Spec.Hostname = fmt.Sprintf("%s-%d", j.Name, i)
		}
		env := corev1.EnvVar{Name: completionIndexEnv, ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{
			FieldPath: fmt.Sprintf("metadata.annotations['%s']", batchv1.JobCompletionIndexAnnotation)}}}
		for k := range p.Spec.InitContainers {
			p.Spec.InitContainers[k].Env = append(p.Spec.InitContainers[k].Env, env)
		}
		for k := range p.Spec.Containers {
			p.Spec.Containers[k].Env = append(p.Spec.Containers[k].Env, env)
		}
	}
	created, err := c.client.CoreV1().Pods(j.Namespace).Create(ctx, p, metav1.CreateOptions{})
	if err != nil {
		if apierrors.HasStatusCause(err, corev1.NamespaceTerminatingCause) {
			return nil
		}
		c.recorder.Eventf(j, corev1.EventTypeWarning, "FailedCreate", "Error creating: %v", err)
		return err
	}
	c.recorder.Eventf(j, corev1.EventTypeNormal, "SuccessfulCreate", "Created pod: %v", created.Name)
	return nil
}

// deletePods deletes the given pods of j, concurrently.
func (c *Controller) deletePods(ctx context.Context, key string, j *batchv1.Job, victims []*corev1.Pod) error {
	if len(victims) == 0 {
		return nil
	}
	keys := make([]string, len(victims))
	for i, p := range victims {
		keys[i] = podKey(p)
	}
	c.exp.ExpectDeletions(key, keys)
	errs := make(chan error, len(victims))
	var wg sync.WaitGroup
	for _, p := range victims {
		wg.Go(func() {
			err := c.client.CoreV1().Pods(p.Namespace).Delete(ctx, p.Name, metav1.DeleteOptions{})
			if err != nil {
				c.exp.DeletionObserved(key, podKey(p))
				if !apierrors.IsNotFound(err) {
					c.recorder.Eventf(j, corev1.EventTypeWarning, "FailedDelete", "Error deleting: %v", err)
					errs <- err
				}
				return
			}
			c.recorder.Eventf(j, corev1.EventTypeNormal, "SuccessfulDelete", "Deleted pod: %v", p.Name)
		})
	}
	wg.Wait()
	close(errs)
	return <-errs
}

func getCondition(st *batchv1.JobStatus, t batchv1.JobConditionType) *batchv1.JobCondition {
	for i := range st.Conditions {
		if st.Conditions[i].Type == t {
			return &st.Conditions[i]
		}
	}
	return nil
}

// setCondition sets a condition, reporting whether its status changed.
func setCondition(st *batchv1.JobStatus, t batchv1.JobConditionType, s corev1.ConditionStatus, reason, msg string, now time.Time) bool {
	cond := getCondition(st, t)
	if cond != nil && cond.Status == s && cond.Reason == reason && cond.Message == msg {
		return false
	}
	ts := metav1.NewTime(now)
	if cond == nil {
		st.Conditions = append(st.Conditions, batchv1.JobCondition{Type: t})
		cond = &st.Conditions[len(st.Conditions)-1]
	}
	changed := cond.Status != s
	if changed {
		cond.LastTransitionTime = ts
	}
	cond.Status, cond.Reason, cond.Message, cond.LastProbeTime = s, reason, msg, ts
	return changed
}
