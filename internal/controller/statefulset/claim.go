package statefulset

import (
	"context"
	"sync"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	utilerrors "k8s.io/apimachinery/pkg/util/errors"

	"github.com/berth-project/berth/internal/controller/ownerref"
)

// canAdopt re-reads the set from the API server (once per sync, however many pods
// and revisions are adopted): adoption is refused if it has gone or is being deleted.
func (c *Controller) canAdopt(set *appsv1.StatefulSet) func(context.Context) error {
	recheck := ownerref.Recheck(set, Kind.Kind, func(ctx context.Context) (metav1.Object, error) {
		return c.client.AppsV1().StatefulSets(set.Namespace).Get(ctx, set.Name, metav1.GetOptions{})
	})
	var once sync.Once
	var err error
	return func(ctx context.Context) error {
		once.Do(func() { err = recheck(ctx) })
		return err
	}
}

// claimPods returns the set's pods after claiming them as upstream does: a pod named
// as one of its members (NAME-i) that its selector matches is the set's, adopted if
// it was an orphan — so a set deleted with --cascade=orphan and created again takes
// its pods back; a pod it controls that is not both is released; pods another
// controller owns are left alone.
func (c *Controller) claimPods(ctx context.Context, set *appsv1.StatefulSet, sel labels.Selector, canAdopt func(context.Context) error) ([]*corev1.Pod, error) {
	all, err := c.podLister.Pods(set.Namespace).List(labels.Everything())
	if err != nil {
		return nil, err
	}
	member := &ownerref.Claimer{Owner: set, Kind: Kind, Selector: sel, CanAdopt: canAdopt, Patch: ownerref.PodPatcher(c.client)}
	stranger := &ownerref.Claimer{Owner: set, Kind: Kind, Selector: labels.Nothing(), Patch: ownerref.PodPatcher(c.client)}
	var owned []*corev1.Pod
	var errs []error
	for _, p := range all {
		cl := member
		if ordinal(set, p) < 0 {
			cl = stranger
		}
		ref := metav1.GetControllerOfNoCopy(p)
		ok, err := cl.Claim(ctx, p)
		switch {
		case err != nil:
			errs = append(errs, err)
		case ok && ref == nil:
			c.log.Info("pod adopted", "statefulset", set.Namespace+"/"+set.Name, "pod", p.Name)
		case !ok && ref != nil && ref.UID == set.UID && set.DeletionTimestamp == nil:
			c.log.Info("pod released", "statefulset", set.Namespace+"/"+set.Name, "pod", p.Name)
		}
		if ok {
			owned = append(owned, p)
		}
	}
	return owned, utilerrors.NewAggregate(errs)
}
