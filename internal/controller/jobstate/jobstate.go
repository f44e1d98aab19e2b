// Package jobstate reads how a Job ended from its status, as the Job, CronJob and
// TTL-after-finished controllers all need to.
package jobstate

import (
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
)

// Finished is the condition that ended the Job (Complete or Failed) and when it did:
// the completion time of a complete Job, else the condition's transition time. It is
// "" while the Job runs.
func Finished(j *batchv1.Job) (batchv1.JobConditionType, time.Time) {
	for _, c := range j.Status.Conditions {
		if (c.Type == batchv1.JobComplete || c.Type == batchv1.JobFailed) && c.Status == corev1.ConditionTrue {
			if c.Type == batchv1.JobComplete && j.Status.CompletionTime != nil {
				return c.Type, j.Status.CompletionTime.Time
			}
			return c.Type, c.LastTransitionTime.Time
		}
	}
	return "", time.Time{}
}
