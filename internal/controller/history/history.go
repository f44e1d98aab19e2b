// Package history keeps the ControllerRevisions of a workload (DaemonSet,
// StatefulSet): one per pod template it has had, numbered in the order they were
// current, which is what kubectl rollout history lists and rollout undo applies.
package history

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"maps"
	"sort"
	"strconv"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/client-go/kubernetes"
	appslisters "k8s.io/client-go/listers/apps/v1"

	"github.com/berth-project/berth/internal/controller/ownerref"
)

// HashLabel names a pod's (and a revision's) template revision.
const HashLabel = appsv1.ControllerRevisionHashLabelKey

// Owner is the workload whose revisions are kept.
type Owner struct {
	Object         metav1.Object
	Kind           schema.GroupVersionKind
	Template       *corev1.PodTemplateSpec
	CollisionCount *int32
	Limit          int // revisions kept besides the current one and those pods use
	// BumpCollisionCount raises the owner's status.collisionCount, after which the
	// next sync hashes to another name.
	BumpCollisionCount func(ctx context.Context) error
	// Selector, when set, has Sync claim revisions first (see claim); without it only
	// the revisions the owner already controls count.
	Selector labels.Selector
	// CanAdopt is the Claimer's: it re-reads the owner before the first adoption.
	CanAdopt func(ctx context.Context) error
}

// Patch is how a revision stores a template: the patch that puts it back.
func Patch(t *corev1.PodTemplateSpec) ([]byte, error) {
	raw, err := runtime.DefaultUnstructuredConverter.ToUnstructured(t)
	if err != nil {
		return nil, err
	}
	raw["$patch"] = "replace"
	return json.Marshal(map[string]any{"spec": map[string]any{"template": raw}})
}

// Template reads the pod template a revision stores.
func Template(cr *appsv1.ControllerRevision) (*corev1.PodTemplateSpec, error) {
	var doc struct {
		Spec struct {
			Template corev1.PodTemplateSpec `json:"template"`
		} `json:"spec"`
	}
	if err := json.Unmarshal(cr.Data.Raw, &doc); err != nil {
		return nil, fmt.Errorf("controller revision %s: %w", cr.Name, err)
	}
	return &doc.Spec.Template, nil
}

// hash hashes a revision's data (FNV-32, as upstream), salted with the collision count.
func hash(data []byte, collisionCount *int32) string {
	h := fnv.New32()
	h.Write(data)
	if collisionCount != nil {
		h.Write([]byte(strconv.FormatInt(int64(*collisionCount), 10)))
	}
	return rand.SafeEncodeString(fmt.Sprint(h.Sum32()))
}

// Owned returns the owner's revisions, oldest first.
func Owned(lister appslisters.ControllerRevisionLister, owner metav1.Object) ([]*appsv1.ControllerRevision, error) {
	all, err := lister.ControllerRevisions(owner.GetNamespace()).List(labels.Everything())
	if err != nil {
		return nil, err
	}
	var out []*appsv1.ControllerRevision
	for _, cr := range all {
		if ref := metav1.GetControllerOfNoCopy(cr); ref != nil && ref.UID == owner.GetUID() {
			out = append(out, cr)
		}
	}
	sortByRevision(out)
	return out, nil
}

// sortByRevision orders revisions oldest first: by number, then (for equal numbers)
// by creation time and name, as upstream does.
func sortByRevision(crs []*appsv1.ControllerRevision) {
	sort.SliceStable(crs, func(i, j int) bool {
		a, b := crs[i], crs[j]
		switch {
		case a.Revision != b.Revision:
			return a.Revision < b.Revision
		case !a.CreationTimestamp.Equal(&b.CreationTimestamp):
			return a.CreationTimestamp.Before(&b.CreationTimestamp)
		}
		return a.Name < b.Name
	})
}

// Sync returns the revision of the owner's current template — the newest revision
// holding it (renumbered as the newest of all when an old template came back), or a
// new one — and deletes the oldest revisions
// beyond the limit that no pod uses (inUse holds the values of the pods' HashLabel:
// the revision hash for DaemonSets, the revision name for StatefulSets).
func Sync(ctx context.Context, client kubernetes.Interface, lister appslisters.ControllerRevisionLister, o Owner, inUse map[string]bool) (*appsv1.ControllerRevision, error) {
	owned, err := o.revisions(ctx, client, lister)
	if err != nil {
		return nil, err
	}
	data, err := Patch(o.Template)
	if err != nil {
		return nil, err
	}
	var cur *appsv1.ControllerRevision
	var maxRev int64
	for _, cr := range owned {
		maxRev = max(maxRev, cr.Revision)
		if sameJSON(cr.Data.Raw, data) {
			cur = cr // owned is oldest first: the last equal one is the newest
		}
	}
	crs := client.AppsV1().ControllerRevisions(o.Object.GetNamespace())
	switch {
	case cur == nil:
		if cur, err = create(ctx, client, o, data, maxRev+1); err != nil {
			return nil, err
		}
	case cur.Revision < maxRev:
		cp := cur.DeepCopy()
		cp.Revision = maxRev + 1
		if cur, err = crs.Update(ctx, cp, metav1.UpdateOptions{}); err != nil {
			return nil, err
		}
	}
	var old []*appsv1.ControllerRevision
	for _, cr := range owned {
		if cr.Name != cur.Name && !inUse[cr.Labels[HashLabel]] && !inUse[cr.Name] {
			old = append(old, cr)
		}
	}
	for _, cr := range old[:max(0, len(old)-o.Limit)] {
		if err := crs.Delete(ctx, cr.Name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			return nil, err
		}
	}
	return cur, nil
}

func create(ctx context.Context, client kubernetes.Interface, o Owner, data []byte, revision int64) (*appsv1.ControllerRevision, error) {
	h := hash(data, o.CollisionCount)
	lbls := maps.Clone(o.Template.Labels)
	if lbls == nil {
		lbls = map[string]string{}
	}
	lbls[HashLabel] = h
	cr := &appsv1.ControllerRevision{
		ObjectMeta: metav1.ObjectMeta{
			Name: o.Object.GetName() + "-" + h, Namespace: o.Object.GetNamespace(), Labels: lbls,
			OwnerReferences: []metav1.OwnerReference{ownerref.ControllerRef(o.Object, o.Kind)},
		},
		Data:     runtime.RawExtension{Raw: data},
		Revision: revision,
	}
	crs := client.AppsV1().ControllerRevisions(o.Object.GetNamespace())
	created, err := crs.Create(ctx, cr, metav1.CreateOptions{})
	if !apierrors.IsAlreadyExists(err) {
		return created, err
	}
	existing, gerr := crs.Get(ctx, cr.Name, metav1.GetOptions{})
	if gerr == nil && sameJSON(existing.Data.Raw, data) && metav1.IsControlledBy(existing, o.Object) {
		return existing, nil
	}
	if err := o.BumpCollisionCount(ctx); err != nil {
		return nil, err
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
