package ownerref

import (
	"context"
	"fmt"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
)

// Recheck is a Claimer's CanAdopt for owner: get re-reads it from the API server, and
// adoption is refused if it has gone (another uid) or is being deleted, as upstream's
// RecheckDeletionTimestamp does.
func Recheck(owner metav1.Object, kind string, get func(ctx context.Context) (metav1.Object, error)) func(context.Context) error {
	return func(ctx context.Context) error {
		fresh, err := get(ctx)
		if err != nil {
			return err
		}
		if fresh.GetUID() != owner.GetUID() {
			return fmt.Errorf("original %s %s/%s is gone: got uid %v, wanted %v", kind, owner.GetNamespace(), owner.GetName(), fresh.GetUID(), owner.GetUID())
		}
		if fresh.GetDeletionTimestamp() != nil {
			return fmt.Errorf("%s %s/%s is being deleted", kind, owner.GetNamespace(), owner.GetName())
		}
		return nil
	}
}

// PodPatcher patches pods' owner references with a strategic merge patch.
func PodPatcher(client kubernetes.Interface) Patcher {
	return func(ctx context.Context, ns, name string, patch []byte) error {
		_, err := client.CoreV1().Pods(ns).Patch(ctx, name, types.StrategicMergePatchType, patch, metav1.PatchOptions{})
		return err
	}
}
