package statefulset

import (
	"context"
	"fmt"
	"maps"
	"strconv"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/berth-project/berth/internal/controller/history"
	"github.com/berth-project/berth/internal/controller/ownerref"
	"github.com/berth-project/berth/internal/controller/pods"
)

// ordinal is the index in a pod's name NAME-i, or -1 for a pod not named so.
func ordinal(set *appsv1.StatefulSet, p *corev1.Pod) int {
	rest, ok := strings.CutPrefix(p.Name, set.Name+"-")
	if !ok {
		return -1
	}
	i, err := strconv.Atoi(rest)
	if err != nil || i < 0 || strconv.Itoa(i) != rest {
		return -1
	}
	return i
}

func podName(set *appsv1.StatefulSet, i int) string { return fmt.Sprintf("%s-%d", set.Name, i) }

// claimName is the claim of volume template t for the pod of ordinal i.
func claimName(t *corev1.PersistentVolumeClaim, set *appsv1.StatefulSet, i int) string {
	return t.Name + "-" + podName(set, i)
}

// newPod is the pod of ordinal i from a revision's template: stable name, hostname
// and subdomain, its claims mounted in place of the template's volumes of the same name.
func newPod(set *appsv1.StatefulSet, t *corev1.PodTemplateSpec, hash string, i int) *corev1.Pod {
	name := podName(set, i)
	p := pods.FromTemplate(t, set, ownerref.ControllerRef(set, Kind))
	p.GenerateName, p.Name = "", name
	if p.Labels == nil {
		p.Labels = map[string]string{}
	}
	p.Labels[appsv1.StatefulSetPodNameLabel] = name
	p.Labels[appsv1.PodIndexLabel] = strconv.Itoa(i)
	p.Labels[history.HashLabel] = hash
	p.Spec.Hostname, p.Spec.Subdomain = name, set.Spec.ServiceName
	for k := range set.Spec.VolumeClaimTemplates {
		ct := &set.Spec.VolumeClaimTemplates[k]
		v := corev1.Volume{Name: ct.Name, VolumeSource: corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: claimName(ct, set, i)}}}
		replaced := false
		for j := range p.Spec.Volumes {
			if p.Spec.Volumes[j].Name == ct.Name {
				p.Spec.Volumes[j], replaced = v, true
			}
		}
		if !replaced {
			p.Spec.Volumes = append(p.Spec.Volumes, v)
		}
	}
	return p
}

// ensureClaims creates the missing claims of ordinal i. Claims outlive the set
// unless its retention policy says to delete them with it (then the set owns them).
func (c *Controller) ensureClaims(ctx context.Context, set *appsv1.StatefulSet, i int) error {
	for k := range set.Spec.VolumeClaimTemplates {
		ct := &set.Spec.VolumeClaimTemplates[k]
		name := claimName(ct, set, i)
		if _, err := c.pvcLister.PersistentVolumeClaims(set.Namespace).Get(name); err == nil {
			continue
		}
		pvc := &corev1.PersistentVolumeClaim{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: set.Namespace, Labels: maps.Clone(ct.Labels), Annotations: maps.Clone(ct.Annotations)},
			Spec:       *ct.Spec.DeepCopy(),
		}
		if pvc.Labels == nil {
			pvc.Labels = map[string]string{}
		}
		if set.Spec.Selector != nil {
			maps.Copy(pvc.Labels, set.Spec.Selector.MatchLabels)
		}
		if rp := set.Spec.PersistentVolumeClaimRetentionPolicy; rp != nil && rp.WhenDeleted == appsv1.DeletePersistentVolumeClaimRetentionPolicyType {
			ref := ownerref.ControllerRef(set, Kind)
			ref.Controller = nil
			pvc.OwnerReferences = []metav1.OwnerReference{ref}
		}
		_, err := c.client.CoreV1().PersistentVolumeClaims(set.Namespace).Create(ctx, pvc, metav1.CreateOptions{})
		if err != nil && !apierrors.IsAlreadyExists(err) {
			c.recorder.Eventf(set, corev1.EventTypeWarning, "FailedCreate", "create Claim %s for Pod %s in StatefulSet %s failed error: %v", name, podName(set, i), set.Name, err)
			return err
		}
		if err == nil {
			c.recorder.Eventf(set, corev1.EventTypeNormal, "SuccessfulCreate", "create Claim %s Pod %s in StatefulSet %s success", name, podName(set, i), set.Name)
		}
	}
	return nil
}

func (c *Controller) createPod(ctx context.Context, set *appsv1.StatefulSet, t *corev1.PodTemplateSpec, hash string, i int) error {
	if err := c.ensureClaims(ctx, set, i); err != nil {
		return err
	}
	p := newPod(set, t, hash, i)
	_, err := c.client.CoreV1().Pods(set.Namespace).Create(ctx, p, metav1.CreateOptions{})
	switch {
	case apierrors.IsAlreadyExists(err):
		return c.nameTaken(ctx, set, p.Name, err)
	case apierrors.HasStatusCause(err, corev1.NamespaceTerminatingCause):
		return nil
	case err != nil:
		c.recorder.Eventf(set, corev1.EventTypeWarning, "FailedCreate", "create Pod %s in StatefulSet %s failed error: %v", p.Name, set.Name, err)
		return err
	}
	c.recorder.Eventf(set, corev1.EventTypeNormal, "SuccessfulCreate", "create Pod %s in StatefulSet %s successful", p.Name, set.Name)
	return nil
}

// nameTaken explains a create that found the name in use: by the set's own pod this
// sync did not see yet (nothing to do), or by a pod that is not the set's — one it
// released, say — which blocks the ordinal until it goes, as upstream. The error
// makes the queue try again with backoff.
func (c *Controller) nameTaken(ctx context.Context, set *appsv1.StatefulSet, name string, err error) error {
	existing, gerr := c.client.CoreV1().Pods(set.Namespace).Get(ctx, name, metav1.GetOptions{})
	if gerr == nil && metav1.IsControlledBy(existing, set) {
		return nil
	}
	c.recorder.Eventf(set, corev1.EventTypeWarning, "FailedCreate", "create Pod %s in StatefulSet %s failed error: the name is taken by a pod the StatefulSet does not own", name, set.Name)
	return fmt.Errorf("pod %s/%s exists and StatefulSet %s does not own it: %w", set.Namespace, name, set.Name, err)
}

func (c *Controller) deletePod(ctx context.Context, set *appsv1.StatefulSet, p *corev1.Pod) error {
	err := c.client.CoreV1().Pods(p.Namespace).Delete(ctx, p.Name, metav1.DeleteOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		c.recorder.Eventf(set, corev1.EventTypeWarning, "FailedDelete", "delete Pod %s in StatefulSet %s failed error: %v", p.Name, set.Name, err)
		return err
	}
	c.recorder.Eventf(set, corev1.EventTypeNormal, "SuccessfulDelete", "delete Pod %s in StatefulSet %s successful", p.Name, set.Name)
	return nil
}
