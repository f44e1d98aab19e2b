package history

import (
	"context"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	utilerrors "k8s.io/apimachinery/pkg/util/errors"
	"k8s.io/client-go/kubernetes"
	appslisters "k8s.io/client-go/listers/apps/v1"

	"github.com/berth-project/berth/internal/controller/ownerref"
)

// revisions returns the owner's revisions, oldest first. With a selector they are
// claimed as upstream's controllers claim theirs: orphans the selector matches are
// adopted — so a workload deleted with --cascade=orphan and created again takes back
// its history instead of colliding with it — and owned ones it no longer matches are
// released. As upstream, an orphan the selector matches counts as the owner's even
// when it is not adopted — while the owner is being deleted — so that an owner deleted
// with --cascade=orphan does not, in its last syncs, take its orphaned history for a
// collision. An adopted revision is returned as the patch left it.
func (o Owner) revisions(ctx context.Context, client kubernetes.Interface, lister appslisters.ControllerRevisionLister) ([]*appsv1.ControllerRevision, error) {
	if o.Selector == nil {
		return Owned(lister, o.Object)
	}
	all, err := lister.ControllerRevisions(o.Object.GetNamespace()).List(labels.Everything())
	if err != nil {
		return nil, err
	}
	crs := client.AppsV1().ControllerRevisions(o.Object.GetNamespace())
	patched := map[string]*appsv1.ControllerRevision{}
	cl := &ownerref.Claimer{
		Owner: o.Object, Kind: o.Kind, Selector: o.Selector, CanAdopt: o.CanAdopt,
		Patch: func(ctx context.Context, _, name string, patch []byte) error {
			cr, err := crs.Patch(ctx, name, types.StrategicMergePatchType, patch, metav1.PatchOptions{})
			if err == nil {
				patched[name] = cr
			}
			return err
		},
	}
	var out []*appsv1.ControllerRevision
	var errs []error
	for _, cr := range all {
		ok, err := cl.Claim(ctx, cr)
		if err != nil {
			errs = append(errs, err)
		}
		if !ok && (metav1.GetControllerOfNoCopy(cr) != nil || !o.Selector.Matches(labels.Set(cr.Labels))) {
			continue // an orphan the selector matches counts even when not adopted (the owner is being deleted), as upstream
		}
		if p := patched[cr.Name]; p != nil {
			cr = p
		}
		out = append(out, cr)
	}
	if err := utilerrors.NewAggregate(errs); err != nil {
		return nil, err
	}
	sortByRevision(out)
	return out, nil
}
