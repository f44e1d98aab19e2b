package apiserver

import (
	"crypto/sha256"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// createFields remembers the managed fields that creates recorded, by a digest of all that
// decides them: the manager, the kind and subresource, and the object but for the metadata
// managed fields leave out (name, namespace, uid, creationTimestamp, generation,
// resourceVersion). A controller's pods, alike but for their names, then cost one walk of
// the object through its schema instead of one each (a tenth of a pod create's CPU).
// Entries are kept for the last createMemoSize shapes, in two generations.
type createFields struct {
	gens twoGen[[sha256.Size]byte, []metav1.ManagedFieldsEntry]
}

const createMemoSize = 256

// protoMarshaler is what the k8s.io/api types implement.
type protoMarshaler interface{ Marshal() ([]byte, error) }

// digest is the key of obj's create by manager, or false for objects it cannot take
// (custom resources).
func (c *createFields) digest(res *resource, sub, manager string, obj runtime.Object) ([sha256.Size]byte, bool) {
	pm, ok := obj.(protoMarshaler)
	acc, err := meta.Accessor(obj)
	if !ok || err != nil || res.custom != nil {
		return [sha256.Size]byte{}, false
	}
	name, ns, uid, rv := acc.GetName(), acc.GetNamespace(), acc.GetUID(), acc.GetResourceVersion()
	created, gen, mf := acc.GetCreationTimestamp(), acc.GetGeneration(), acc.GetManagedFields()
	acc.SetName("")
	acc.SetNamespace("")
	acc.SetUID("")
	acc.SetResourceVersion("")
	acc.SetCreationTimestamp(metav1.Time{})
	acc.SetGeneration(0)
	acc.SetManagedFields(nil)
	data, err := pm.Marshal()
	acc.SetName(name)
	acc.SetNamespace(ns)
	acc.SetUID(uid)
	acc.SetResourceVersion(rv)
	acc.SetCreationTimestamp(created)
	acc.SetGeneration(gen)
	acc.SetManagedFields(mf)
	if err != nil {
		return [sha256.Size]byte{}, false
	}
	h := sha256.New()
	for _, s := range []string{manager, sub, res.gvk().String()} {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	h.Write(data)
	var d [sha256.Size]byte
	h.Sum(d[:0])
	return d, true
}

// get returns the managed fields recorded for d, stamped with the current time.
func (c *createFields) get(d [sha256.Size]byte) ([]metav1.ManagedFieldsEntry, bool) {
	entries, ok := c.gens.get(d, createMemoSize)
	if !ok {
		return nil, false
	}
	now := metav1.NewTime(time.Now().UTC())
	out := make([]metav1.ManagedFieldsEntry, len(entries))
	for i := range entries {
		entries[i].DeepCopyInto(&out[i])
		out[i].Time = &now
	}
	return out, true
}

func (c *createFields) put(d [sha256.Size]byte, entries []metav1.ManagedFieldsEntry) {
	kept := make([]metav1.ManagedFieldsEntry, len(entries))
	for i := range entries {
		entries[i].DeepCopyInto(&kept[i])
	}
	c.gens.put(d, kept, createMemoSize)
}
