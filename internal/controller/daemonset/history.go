package daemonset

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"sort"
	"strconv"

	appsv1 "k8s.io/api/apps/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/rand"

	"github.com/berth-project/berth/internal/controller/ownerref"
)

// HashLabel tells the pods of a DaemonSet's template revisions apart.
const HashLabel = appsv1.DefaultDaemonSetUniqueLabelKey

// templatePatch is how a ControllerRevision stores a DaemonSet's template: the patch
// that puts it back, which is what kubectl rollout undo applies.
func templatePatch(ds *appsv1.DaemonSet) ([]byte, error) {
	raw, err := runtime.DefaultUnstructuredConverter.ToUnstructured(&ds.Spec.Template)
	if err != nil {
		return nil, err
	}
	raw["$patch"] = "replace"
	return json.Marshal(map[string]any{"spec": map[string]any{"template": raw}})
}

// revisionHash hashes a revision's data (FNV-32, as upstream), salted with the
// collision count.
func revisionHash(data []byte, collisionCount *int32) string {
	h := fnv.New32()
	h.Write(data)
	if collisionCount != nil {
		h.Write([]byte(strconv.FormatInt(int64(*collisionCount), 10)))
	}
	return rand.SafeEncodeString(fmt.Sprint(h.Sum32()))
}

// history returns the ControllerRevision of ds's current template (created, or given
// the newest revision number when an old template came back) and cleans up old
// revisions beyond revisionHistoryLimit that no pod uses.
func (c *Controller) history(ctx context.Context, ds *appsv1.DaemonSet, podHashes map[string]bool) (*appsv1.ControllerRevision, error) {
	all, err := c.crLister.ControllerRevisions(ds.Namespace).List(labels.Everything())
	if err != nil {
		return nil, err
	}
	var owned []*appsv1.ControllerRevision
	for _, cr := range all {
		if ref := metav1.GetControllerOfNoCopy(cr); ref != nil && ref.UID == ds.UID {
			owned = append(owned, cr)
		}
	}
	sort.Slice(owned, func(i, j int) bool { return owned[i].Revision < owned[j].Revision })
	data, err := templatePatch(ds)
	if err != nil {
		return nil, err
	}
	var cur *appsv1.ControllerRevision
	var maxRev int64
	for _, cr := range owned {
		maxRev = max(maxRev, cr.Revision)
		if cur == nil && sameJSON(cr.Data.Raw, data) {
			cur = cr
		}
	}
	switch {
	case cur == nil:
		if cur, err = c.createRevision(ctx, ds, data, maxRev+1); err != nil {
			return nil, err
		}
	case cur.Revision < maxRev:
		cp := cur.DeepCopy()
		cp.Revision = maxRev + 1
		if cur, err = c.client.AppsV1().ControllerRevisions(ds.Namespace).Update(ctx, cp, metav1.UpdateOptions{}); err != nil {
			return nil, err
		}
	}
	limit := 10
	if ds.Spec.RevisionHistoryLimit != nil {
		limit = int(*ds.Spec.RevisionHistoryLimit)
	}
	var old []*appsv1.ControllerRevision
	for _, cr := range owned {
		if cr.Name != cur.Name && !podHashes[cr.Labels[HashLabel]] {
			old = append(old, cr)
		}
	}
	for _, cr := range old[:max(0, len(old)-limit)] {
		if err := c.client.AppsV1().ControllerRevisions(cr.Namespace).Delete(ctx, cr.Name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			return nil, err
		}
	}
	return cur, nil
}

func (c *Controller) createRevision(ctx context.Context, ds *appsv1.DaemonSet, data []byte, revision int64) (*appsv1.ControllerRevision, error) {
	hash := revisionHash(data, ds.Status.CollisionCount)
	lbls := map[string]string{HashLabel: hash}
	for k, v := range ds.Spec.Template.Labels {
		lbls[k] = v
	}
	cr := &appsv1.ControllerRevision{
		ObjectMeta: metav1.ObjectMeta{
			Name: ds.Name + "-" + hash, Namespace: ds.Namespace, Labels: lbls,
			OwnerReferences: []metav1.OwnerReference{ownerref.ControllerRef(ds, Kind)},
		},
		Data:     runtime.RawExtension{Raw: data},
		Revision: revision,
	}
	created, err := c.client.AppsV1().ControllerRevisions(ds.Namespace).Create(ctx, cr, metav1.CreateOptions{})
	if !apierrors.IsAlreadyExists(err) {
		return created, err
	}
	existing, gerr := c.client.AppsV1().ControllerRevisions(ds.Namespace).Get(ctx, cr.Name, metav1.GetOptions{})
	if gerr == nil && sameJSON(existing.Data.Raw, data) && metav1.IsControlledBy(existing, ds) {
		return existing, nil
	}
	// Another revision has the name: a hash collision. Salt the hash and try again.
	cp := ds.DeepCopy()
	cp.Status.CollisionCount = new(int32)
	if ds.Status.CollisionCount != nil {
		*cp.Status.CollisionCount = *ds.Status.CollisionCount + 1
	}
	if _, uerr := c.client.AppsV1().DaemonSets(ds.Namespace).UpdateStatus(ctx, cp, metav1.UpdateOptions{}); uerr != nil {
		return nil, uerr
	}
	return nil, fmt.Errorf("controller revision %s exists with other data: collision count raised", cr.Name)
}

// sameJSON compares two JSON documents by value, not by key order.
func sameJSON(a, b []byte) bool {
	if bytes.Equal(a, b) {
		return true
	}
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	xa, _ := json.Marshal(x)
	ya, _ := json.Marshal(y)
	return bytes.Equal(xa, ya)
}
