package apiserver

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/berth-project/berth/internal/storage"
)

func (s *Server) delete(w http.ResponseWriter, r *http.Request, req request) error {
	opts, err := deleteOptions(r)
	if err != nil {
		return err
	}
	obj, err := s.deleteObject(r.Context(), req, opts, dryRun(r))
	if err != nil {
		return err
	}
	s.writeObject(w, r, http.StatusOK, obj, req.gv)
	return nil
}

// deleteOptions reads a DELETE's options: the body (a DeleteOptions, as client-go and
// kubectl send them), then the query parameters, which win as upstream's do.
func deleteOptions(r *http.Request) (metav1.DeleteOptions, error) {
	opts := metav1.DeleteOptions{}
	if body, _ := io.ReadAll(io.LimitReader(r.Body, maxBody)); len(body) > 0 {
		if err := runtime.DecodeInto(codecs.UniversalDecoder(), body, &opts); err != nil {
			return opts, apierrors.NewBadRequest(fmt.Sprintf("invalid DeleteOptions: %v", err))
		}
	}
	q := r.URL.Query()
	if p := q.Get("propagationPolicy"); p != "" {
		pp := metav1.DeletionPropagation(p)
		opts.PropagationPolicy = &pp
	}
	if g := q.Get("gracePeriodSeconds"); g != "" {
		n, err := strconv.ParseInt(g, 10, 64)
		if err != nil {
			return opts, apierrors.NewBadRequest(fmt.Sprintf("invalid gracePeriodSeconds %q", g))
		}
		opts.GracePeriodSeconds = &n
	}
	if o := q.Get("orphanDependents"); o != "" {
		b, err := strconv.ParseBool(o)
		if err != nil {
			return opts, apierrors.NewBadRequest(fmt.Sprintf("invalid orphanDependents %q", o))
		}
		opts.OrphanDependents = &b
	}
	if opts.OrphanDependents != nil && opts.PropagationPolicy != nil {
		return opts, apierrors.NewBadRequest("DeleteOptions: orphanDependents and propagationPolicy cannot both be set")
	}
	if pp := opts.PropagationPolicy; pp != nil && *pp != metav1.DeletePropagationForeground &&
		*pp != metav1.DeletePropagationBackground && *pp != metav1.DeletePropagationOrphan {
		return opts, apierrors.NewBadRequest(fmt.Sprintf("DeleteOptions: propagationPolicy %q is not one of Foreground, Background, Orphan", *pp))
	}
	return opts, nil
}

var errNoWrite = errors.New("nothing to write")

// maxDeleteRaces bounds how often a delete decides again because the object changed
// between its read and its removal.
const maxDeleteRaces = 5

// deleteObject deletes the object as planDelete decides: at once; or by marking it
// (deletionTimestamp) and leaving the rest to its finalizers, or for a pod on a node,
// to the kubelet, which stops it within the grace period and deletes it again with 0.
func (s *Server) deleteObject(ctx context.Context, req request, opts metav1.DeleteOptions, dry bool) (runtime.Object, error) {
	key := req.res.key(req.namespace, req.name)
	for race := 0; ; race++ {
		var out runtime.Object
		var plan deletion
		var readRev int64
		// From the watch cache's copy, decoded once per revision, as an update: the store
		// decides again on what etcd holds before it writes or reports anything a stale
		// copy led to.
		kv, err := s.cacher(req.res).GuaranteedUpdate(ctx, key, func(cur storage.KV, exists bool) ([]byte, error) {
			if !exists {
				return nil, apierrors.NewNotFound(req.res.gvr.GroupResource(), req.name)
			}
			e, err := s.decoded(req.res, cur, false)
			if err != nil {
				return nil, err
			}
			obj := e.obj.DeepCopyObject() // planDelete marks it; the decoded one is shared
			if err := checkPreconditions(req, obj, opts.Preconditions); err != nil {
				return nil, err
			}
			out, readRev = obj, cur.ModRevision
			if plan = planDelete(obj, opts, time.Now()); plan != deleteMark && plan != deleteAfterMark {
				return nil, errNoWrite
			}
			if dry {
				return nil, errDryRun
			}
			return s.encodeForStorage(req.res, obj)
		})
		if err != nil && err != errNoWrite && err != errDryRun {
			return nil, storageError(err, req.res, req.name)
		}
		switch {
		case plan == deleteMark && !dry:
			acc, _ := meta.Accessor(out)
			acc.SetResourceVersion(strconv.FormatInt(kv.ModRevision, 10))
			if req.res.kind == "Namespace" {
				go s.finalizeNamespace(req.name)
			}
			return out, nil
		case plan == deletePending || dry:
			return out, nil
		case plan == deleteAfterMark:
			readRev = kv.ModRevision
		}
		gone, err := s.store.Delete(ctx, key, readRev)
		if errors.Is(err, storage.ErrConflict) && race < maxDeleteRaces {
			continue // written since it was read: decide again on what is there now
		}
		if err != nil {
			return nil, storageError(err, req.res, req.name)
		}
		return s.decodeFromStorage(req.res, storage.KV{Key: gone.Key, Value: gone.Value, ModRevision: gone.ModRevision})
	}
}

func checkPreconditions(req request, obj runtime.Object, pre *metav1.Preconditions) error {
	if pre == nil {
		return nil
	}
	acc, _ := meta.Accessor(obj)
	if pre.UID != nil && *pre.UID != acc.GetUID() {
		return apierrors.NewConflict(req.res.gvr.GroupResource(), req.name, fmt.Errorf("Precondition failed: UID in precondition: %v, UID in object meta: %v", *pre.UID, acc.GetUID()))
	}
	if pre.ResourceVersion != nil && *pre.ResourceVersion != acc.GetResourceVersion() {
		return apierrors.NewConflict(req.res.gvr.GroupResource(), req.name, fmt.Errorf("Precondition failed: ResourceVersion in precondition: %v, ResourceVersion in object meta: %v", *pre.ResourceVersion, acc.GetResourceVersion()))
	}
	return nil
}

func (s *Server) deleteCollection(w http.ResponseWriter, r *http.Request, req request) error {
	o, err := parseListOptions(r)
	if err != nil {
		return err
	}
	opts, err := deleteOptions(r)
	if err != nil {
		return err
	}
	matching, _, err := s.listMatching(r.Context(), req, storage.ListOptions{}, o)
	if err != nil {
		return err
	}
	var items []runtime.Object
	for _, obj := range matching {
		acc, _ := meta.Accessor(obj)
		one := req
		one.namespace, one.name = acc.GetNamespace(), acc.GetName()
		if out, err := s.deleteObject(r.Context(), one, opts, dryRun(r)); err == nil {
			items = append(items, out)
		} else if !apierrors.IsNotFound(err) {
			return err
		}
	}
	list := req.res.newList()
	meta.SetList(list, items)
	s.writeObject(w, r, http.StatusOK, list, req.gv)
	return nil
}

// gracePending reports whether an object marked for deletion still waits for its grace
// period to end (a pod its kubelet is stopping): it stays, finalizers or not, until it
// is deleted again with a grace period of 0.
func gracePending(acc metav1.Object) bool {
	g := acc.GetDeletionGracePeriodSeconds()
	return acc.GetDeletionTimestamp() != nil && g != nil && *g > 0
}

// podGracePeriod is how long a pod being deleted gets to stop, as upstream's pod
// strategy decides it: what the DELETE asks, else the pod's terminationGracePeriodSeconds;
// 0 for a pod no node runs (unbound) or that has finished.
func podGracePeriod(pod *corev1.Pod, asked *int64) int64 {
	if !running(pod) {
		return 0
	}
	if asked != nil {
		return *asked
	}
	if g := pod.Spec.TerminationGracePeriodSeconds; g != nil {
		return *g
	}
	return corev1.DefaultTerminationGracePeriodSeconds
}

// addString returns list with s added, unless it is there already.
func addString(list []string, s string) []string {
	if contains(list, s) {
		return list
	}
	return append(append([]string{}, list...), s)
}

func removeString(list []string, s string) []string {
	if !contains(list, s) {
		return list
	}
	var out []string
	for _, v := range list {
		if v != s {
			out = append(out, v)
		}
	}
	return out
}
