// Package ownerref is how a controller claims the objects its selector matches:
// adopting orphans, releasing what it owns but no longer matches, and leaving alone
// what another controller owns — the rules upstream's ControllerRefManager follows.
package ownerref

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
)

// Patcher applies a strategic merge patch to the named object in namespace.
type Patcher func(ctx context.Context, namespace, name string, patch []byte) error

// Claimer claims objects for one owner.
type Claimer struct {
	Owner    metav1.Object
	Kind     schema.GroupVersionKind // the owner's
	Selector labels.Selector
	// CanAdopt is called once, before the first adoption: it re-reads the owner from
	// the API server and fails if it has gone or is being deleted, since the informer's
	// copy may be stale.
	CanAdopt func(ctx context.Context) error
	Patch    Patcher

	once     sync.Once
	adoptErr error
}

// Claim reports whether obj belongs to the owner after claiming: true for what the
// owner controls and its selector matches (adopting it if it was an orphan), false
// for the rest (releasing it if the owner controlled it).
func (c *Claimer) Claim(ctx context.Context, obj metav1.Object) (bool, error) {
	matches := c.Selector.Matches(labels.Set(obj.GetLabels()))
	if ref := metav1.GetControllerOfNoCopy(obj); ref != nil {
		if ref.UID != c.Owner.GetUID() {
			return false, nil
		}
		if matches {
			return true, nil
		}
		if c.Owner.GetDeletionTimestamp() != nil {
			return false, nil
		}
		return false, ignoreNotFound(c.Patch(ctx, obj.GetNamespace(), obj.GetName(), ReleasePatch(c.Owner.GetUID(), obj.GetUID())))
	}
	if !matches || c.Owner.GetDeletionTimestamp() != nil || obj.GetDeletionTimestamp() != nil || obj.GetNamespace() != c.Owner.GetNamespace() {
		return false, nil
	}
	c.once.Do(func() {
		if c.CanAdopt != nil {
			c.adoptErr = c.CanAdopt(ctx)
		}
	})
	if c.adoptErr != nil {
		return false, fmt.Errorf("can not adopt %s/%s: %w", obj.GetNamespace(), obj.GetName(), c.adoptErr)
	}
	err := c.Patch(ctx, obj.GetNamespace(), obj.GetName(), AdoptPatch(c.Owner, c.Kind, obj.GetUID()))
	if apierrors.IsNotFound(err) {
		return false, nil
	}
	return err == nil, err
}

func ignoreNotFound(err error) error {
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}

// ControllerRef is the owner reference a controller puts on what it creates.
func ControllerRef(owner metav1.Object, kind schema.GroupVersionKind) metav1.OwnerReference {
	return *metav1.NewControllerRef(owner, kind)
}

type patchMeta struct {
	Metadata struct {
		OwnerReferences []any     `json:"ownerReferences"`
		UID             types.UID `json:"uid"`
	} `json:"metadata"`
}

// AdoptPatch makes owner the controller of the object with uid (the uid also guards
// against patching a different object of the same name).
func AdoptPatch(owner metav1.Object, kind schema.GroupVersionKind, uid types.UID) []byte {
	var p patchMeta
	p.Metadata.OwnerReferences = []any{ControllerRef(owner, kind)}
	p.Metadata.UID = uid
	b, _ := json.Marshal(p)
	return b
}

// ReleasePatch removes the reference to owner from the object with uid.
func ReleasePatch(owner, uid types.UID) []byte {
	var p patchMeta
	p.Metadata.OwnerReferences = []any{map[string]any{"$patch": "delete", "uid": owner}}
	p.Metadata.UID = uid
	b, _ := json.Marshal(p)
	return b
}
