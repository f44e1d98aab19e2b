package apiserver

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/rand"

	"github.com/berth-project/berth/internal/storage"
)

// request is a resource request after routing.
type request struct {
	gv        schema.GroupVersion
	res       *resource
	namespace string
	name      string
	sub       string
}

// maxBody bounds request bodies (kube-apiserver's limit is 3 MiB per object).
const maxBody = 3 << 20

func (s *Server) serveResource(w http.ResponseWriter, r *http.Request, req request) {
	q := r.URL.Query()
	r = withWarnings(w, r)
	if req.res.namespaced && req.namespace == "" && req.name != "" {
		s.writeError(w, r, apierrors.NewBadRequest("the server could not find the requested resource: a namespaced object needs a namespace"))
		return
	}
	var err error
	switch {
	case req.sub != "" && isStream(req):
		err = s.proxyToKubelet(w, r, req)
	case r.Method == http.MethodGet:
		switch {
		case req.name != "" && req.sub == "":
			err = s.get(w, r, req)
		case req.name != "":
			err = s.getSub(w, r, req)
		case q.Get("watch") == "1" || q.Get("watch") == "true":
			err = s.watch(w, r, req)
		default:
			err = s.list(w, r, req)
		}
	case r.Method == http.MethodPost:
		if req.name != "" && req.sub == "" {
			err = apierrors.NewMethodNotSupported(req.res.gvr.GroupResource(), "create")
		} else {
			err = s.create(w, r, req)
		}
	case r.Method == http.MethodPut:
		err = s.update(w, r, req)
	case r.Method == http.MethodPatch:
		err = s.patch(w, r, req)
	case r.Method == http.MethodDelete:
		if req.name == "" {
			err = s.deleteCollection(w, r, req)
		} else {
			err = s.delete(w, r, req)
		}
	default:
		err = apierrors.NewMethodNotSupported(req.res.gvr.GroupResource(), strings.ToLower(r.Method))
	}
	if err != nil {
		s.writeError(w, r, err)
	}
}

func (s *Server) get(w http.ResponseWriter, r *http.Request, req request) error {
	obj, err := s.getObject(r.Context(), req.res, req.namespace, req.name)
	if err != nil {
		return err
	}
	if info, asTable, err := outputFor(r, true); err == nil && asTable {
		s.encode(w, http.StatusOK, info, tableFor(req.res, []runtime.Object{obj}), metav1.SchemeGroupVersion)
		return nil
	}
	s.writeObject(w, r, http.StatusOK, obj, req.gv)
	return nil
}

func (s *Server) getSub(w http.ResponseWriter, r *http.Request, req request) error {
	switch req.sub {
	case "status":
		return s.get(w, r, req)
	case "scale":
		obj, err := s.getObject(r.Context(), req.res, req.namespace, req.name)
		if err != nil {
			return err
		}
		sc, err := scaleFor(req.res, obj)
		if err != nil {
			return err
		}
		s.writeObject(w, r, http.StatusOK, sc, schema.GroupVersion{Group: "autoscaling", Version: "v1"})
		return nil
	}
	return apierrors.NewMethodNotSupported(req.res.gvr.GroupResource(), "get "+req.sub)
}

// listOptions are the list and watch query parameters that matter here.
type listOptions struct {
	labels labels.Selector
	fields fields.Selector
	limit  int64
	cont   string
	rv     string
}

func parseListOptions(r *http.Request) (listOptions, error) {
	q := r.URL.Query()
	o := listOptions{labels: labels.Everything(), fields: fields.Everything(), cont: q.Get("continue"), rv: q.Get("resourceVersion")}
	var err error
	if v := q.Get("labelSelector"); v != "" {
		if o.labels, err = labels.Parse(v); err != nil {
			return o, apierrors.NewBadRequest(fmt.Sprintf("unable to parse requirement: %v", err))
		}
	}
	if v := q.Get("fieldSelector"); v != "" {
		if o.fields, err = fields.ParseSelector(v); err != nil {
			return o, apierrors.NewBadRequest(fmt.Sprintf("invalid field selector: %v", err))
		}
	}
	if v := q.Get("limit"); v != "" {
		if o.limit, err = strconv.ParseInt(v, 10, 64); err != nil || o.limit < 0 {
			return o, apierrors.NewBadRequest("limit must be a non-negative integer")
		}
	}
	if o.rv != "" {
		if _, err := strconv.ParseUint(o.rv, 10, 64); err != nil {
			return o, apierrors.NewBadRequest(fmt.Sprintf("invalid resourceVersion %q", o.rv))
		}
	}
	return o, nil
}

// prefix is where a list or watch looks: one namespace, or all of them.
func (req request) prefix() string {
	if req.res.namespaced && req.namespace != "" {
		return req.res.storagePrefix() + req.namespace + "/"
	}
	return req.res.storagePrefix()
}

func (s *Server) list(w http.ResponseWriter, r *http.Request, req request) error {
	o, err := parseListOptions(r)
	if err != nil {
		return err
	}
	if err := checkFieldSelector(req.res, o.fields); err != nil {
		return err
	}
	filtered := !o.labels.Empty() || !o.fields.Empty()
	lo := storage.ListOptions{Continue: o.cont}
	if !filtered {
		lo.Limit = o.limit
	}
	if o.rv != "" && o.rv != "0" && o.cont == "" {
		lo.Revision, _ = strconv.ParseInt(o.rv, 10, 64)
	}
	items, res, err := s.listMatching(r.Context(), req, lo, o)
	if err != nil {
		return err
	}
	list := req.res.newList()
	if err := meta.SetList(list, items); err != nil {
		return apierrors.NewInternalError(err)
	}
	lm, err := meta.ListAccessor(list)
	if err != nil {
		return apierrors.NewInternalError(err)
	}
	lm.SetResourceVersion(strconv.FormatInt(res.Revision, 10))
	lm.SetContinue(res.Continue)
	if res.Continue != "" && res.Remaining > 0 {
		n := res.Remaining
		if la, ok := list.(metav1.ListInterface); ok {
			la.SetRemainingItemCount(&n)
		}
	}
	list.GetObjectKind().SetGroupVersionKind(req.gv.WithKind(req.res.kind + "List"))
	if info, asTable, err := outputFor(r, true); err == nil && asTable {
		t := tableFor(req.res, items)
		t.ResourceVersion, t.Continue = lm.GetResourceVersion(), lm.GetContinue()
		s.encode(w, http.StatusOK, info, t, metav1.SchemeGroupVersion)
		return nil
	}
	s.writeObject(w, r, http.StatusOK, list, req.gv)
	return nil
}

// listMatching lists the collection and keeps the objects the selectors match. The
// watch cache answers full, latest lists from memory; pages and past revisions read etcd.
func (s *Server) listMatching(ctx context.Context, req request, lo storage.ListOptions, o listOptions) ([]runtime.Object, storage.ListResult, error) {
	res, err := s.cacher(req.res).List(ctx, req.prefix(), lo)
	if err != nil {
		return nil, res, storageError(err, req.res, "")
	}
	var items []runtime.Object
	for _, kv := range res.Items {
		obj, err := s.decodeFromStorage(req.res, kv)
		if err != nil {
			return nil, res, err
		}
		if matches(req.res, obj, o.labels, o.fields) {
			items = append(items, obj)
		}
	}
	return items, res, nil
}

// decodeBody reads the request body as an object of the resource's kind.
func (s *Server) decodeBody(r *http.Request, res *resource) (runtime.Object, error) {
	body, err := readBody(r)
	if err != nil {
		return nil, err
	}
	obj, err := decodeObject(r, body, res.gvk(), res.new)
	if err == nil && res.custom != nil {
		return res.custom.admit(r, res.gvk(), obj)
	}
	return obj, err
}

// decodeObject decodes body (JSON, YAML or protobuf, by Content-Type) into a new
// object, honouring fieldValidation.
func decodeObject(r *http.Request, body []byte, gvk schema.GroupVersionKind, newObj func() runtime.Object) (runtime.Object, error) {
	if len(body) == 0 {
		return nil, apierrors.NewBadRequest("the request body is empty")
	}
	ct := r.Header.Get("Content-Type")
	mt := strings.TrimSpace(strings.Split(ct, ";")[0])
	var dec runtime.Decoder = codecs.UniversalDeserializer()
	for _, info := range codecs.SupportedMediaTypes() {
		if info.MediaType == mt {
			dec = info.Serializer
			if fieldValidationOf(r) != validationIgnore && info.StrictSerializer != nil {
				dec = info.StrictSerializer
			}
		}
	}
	into := newObj()
	obj, got, err := dec.Decode(body, &gvk, into)
	if err = checkUnknownFields(r, gvk, err); err != nil {
		if apierrors.IsBadRequest(err) {
			return nil, err
		}
		return nil, apierrors.NewBadRequest(fmt.Sprintf("the body of the request was in an unknown format - accepted media types include: %s (%v)", strings.Join(mediaTypes(), ", "), err))
	}
	if got.Kind != gvk.Kind || got.Group != gvk.Group {
		return nil, apierrors.NewBadRequest(fmt.Sprintf("the API version in the data (%s) does not match the expected API version (%s)", got.GroupVersion(), gvk.GroupVersion()))
	}
	return obj, nil
}

func (s *Server) create(w http.ResponseWriter, r *http.Request, req request) error {
	if req.sub != "" {
		return s.createSub(w, r, req)
	}
	obj, err := s.decodeBody(r, req.res)
	if err != nil {
		return err
	}
	defaultObject(obj) // before tracking: the defaults are the creator's, as upstream
	return s.createObject(w, r, req, obj, func(obj runtime.Object) (runtime.Object, error) {
		return s.trackUpdate(r, req.res, "", nil, obj), nil
	})
}

// createObject stores a new object; track records who set its fields (the managed
// fields of an Update, or a server-side apply).
func (s *Server) createObject(w http.ResponseWriter, r *http.Request, req request, obj runtime.Object, track func(runtime.Object) (runtime.Object, error)) error {
	acc, err := meta.Accessor(obj)
	if err != nil {
		return apierrors.NewBadRequest(err.Error())
	}
	if req.res.namespaced {
		if ns := acc.GetNamespace(); ns != "" && req.namespace != "" && ns != req.namespace {
			return apierrors.NewBadRequest("the namespace of the provided object does not match the namespace sent on the request")
		}
		if req.namespace == "" {
			req.namespace = acc.GetNamespace()
		}
		if req.namespace == "" {
			req.namespace = metav1.NamespaceDefault
		}
		acc.SetNamespace(req.namespace)
	} else {
		acc.SetNamespace("")
	}
	if acc.GetResourceVersion() != "" {
		return apierrors.NewBadRequest("resourceVersion should not be set on objects to be created")
	}
	if acc.GetName() == "" && acc.GetGenerateName() != "" {
		acc.SetName(acc.GetGenerateName() + rand.String(5))
	}
	if req.res.namespaced {
		if err := s.namespaceActive(r.Context(), req.namespace); err != nil {
			return err
		}
	}
	acc.SetUID(typesUID(newUID()))
	acc.SetCreationTimestamp(metav1.Now())
	acc.SetDeletionTimestamp(nil)
	acc.SetDeletionGracePeriodSeconds(nil)
	acc.SetManagedFields(nil)
	if hasSpec(obj) {
		acc.SetGeneration(1)
	}
	if obj, err = track(obj); err != nil {
		return err
	}
	if acc, err = meta.Accessor(obj); err != nil {
		return apierrors.NewInternalError(err)
	}
	prepareForCreate(req.res, obj)
	defaultObject(obj)
	if err := validate(req.res, obj); err != nil {
		return err
	}
	if svc, ok := obj.(*corev1.Service); ok {
		if err := s.allocateService(r.Context(), svc, nil); err != nil {
			return err
		}
	}
	if dryRun(r) {
		s.writeObject(w, r, http.StatusCreated, obj, req.gv)
		return nil
	}
	data, err := s.encodeForStorage(req.res, obj)
	if err != nil {
		return apierrors.NewInternalError(err)
	}
	key := req.res.key(req.namespace, acc.GetName())
	rev, err := s.store.Create(r.Context(), key, data)
	if err != nil {
		return storageError(err, req.res, acc.GetName())
	}
	acc.SetResourceVersion(strconv.FormatInt(rev, 10))
	s.wrote(req.res, key, rev, obj.DeepCopyObject())
	s.afterCreate(req.res, obj)
	s.writeObject(w, r, http.StatusCreated, obj, req.gv)
	return nil
}

func dryRun(r *http.Request) bool {
	for _, v := range r.URL.Query()["dryRun"] {
		if v == "All" {
			return true
		}
	}
	return false
}

// namespaceActive refuses objects in a namespace that is missing or being deleted.
// The namespace is looked up in the watch cache first, as upstream's NamespaceLifecycle
// admission uses its informer: an active namespace there is taken as it is (this runs on
// every create). Missing or terminating there, etcd has the last word.
func (s *Server) namespaceActive(ctx context.Context, ns string) error {
	nsRes := s.reg.get("", "v1", "namespaces")
	if kv, ok := s.cacher(nsRes).Peek(nsRes.key("", ns)); ok {
		if e, err := s.decoded(nsRes, kv, false); err == nil { // decoded once per revision
			if acc, _ := meta.Accessor(e.obj); acc != nil && acc.GetDeletionTimestamp() == nil {
				return nil
			}
		}
	}
	obj, err := s.getObject(ctx, nsRes, "", ns)
	if err != nil {
		if apierrors.IsNotFound(err) {
			return apierrors.NewNotFound(schema.GroupResource{Resource: "namespaces"}, ns)
		}
		return err
	}
	if acc, _ := meta.Accessor(obj); acc != nil && acc.GetDeletionTimestamp() != nil {
		// With upstream's cause, by which controllers know to stop rather than retry.
		err := apierrors.NewForbidden(schema.GroupResource{Resource: "namespaces"}, ns,
			fmt.Errorf("unable to create new content in namespace %s because it is being terminated", ns))
		err.ErrStatus.Details.Causes = append(err.ErrStatus.Details.Causes, metav1.StatusCause{
			Type: corev1.NamespaceTerminatingCause, Message: fmt.Sprintf("namespace %s is being terminated", ns), Field: "metadata.namespace"})
		return err
	}
	return nil
}

func (s *Server) update(w http.ResponseWriter, r *http.Request, req request) error {
	if req.name == "" {
		return apierrors.NewMethodNotSupported(req.res.gvr.GroupResource(), "update")
	}
	if req.sub == "scale" {
		return s.updateScale(w, r, req, nil)
	}
	obj, err := s.decodeBody(r, req.res)
	if err != nil {
		return err
	}
	acc, err := meta.Accessor(obj)
	if err != nil {
		return apierrors.NewBadRequest(err.Error())
	}
	if acc.GetName() != req.name {
		return apierrors.NewBadRequest(fmt.Sprintf("the name of the object (%s) does not match the name on the URL (%s)", acc.GetName(), req.name))
	}
	if acc.GetResourceVersion() == "" {
		return apierrors.NewInvalid(req.res.gvk().GroupKind(), req.name, fieldErrors("metadata.resourceVersion", "", "must be specified for an update"))
	}
	out, code, err := s.storeUpdate(r.Context(), req, func(cur runtime.Object) (runtime.Object, error) {
		return s.trackUpdate(r, req.res, req.sub, cur, obj.DeepCopyObject()), nil
	}, dryRun(r))
	if err != nil {
		return err
	}
	s.writeObject(w, r, code, out, req.gv)
	return nil
}

// storeUpdate moves the stored object to what fn makes of it: the resourceVersion the
// new object carries (if any) must be current (409 otherwise); what the server owns
// (uid, creation time, status or spec, depending on the subresource) is kept; the
// generation moves when the spec does.
func (s *Server) storeUpdate(ctx context.Context, req request, fn func(cur runtime.Object) (runtime.Object, error), dry bool) (runtime.Object, int, error) {
	var result runtime.Object
	var deleted bool
	key := req.res.key(req.namespace, req.name)
	// From the watch cache's copy, as upstream: no read of etcd first; a stale copy costs a retry.
	kv, err := s.cacher(req.res).GuaranteedUpdate(ctx, key, func(cur storage.KV, exists bool) ([]byte, error) {
		if !exists {
			return nil, apierrors.NewNotFound(req.res.gvr.GroupResource(), req.name)
		}
		// Decoded once per revision (the watch has usually done it): a copy is cheaper.
		// old is that shared object: read, never changed.
		e, err := s.decoded(req.res, cur, false)
		if err != nil {
			return nil, err
		}
		old := e.obj
		obj, err := fn(old.DeepCopyObject())
		if err != nil {
			return nil, err
		}
		acc, err := meta.Accessor(obj)
		if err != nil {
			return nil, apierrors.NewBadRequest(err.Error())
		}
		oldAcc, _ := meta.Accessor(old)
		if rv := acc.GetResourceVersion(); rv != "" && rv != oldAcc.GetResourceVersion() {
			return nil, apierrors.NewConflict(req.res.gvr.GroupResource(), req.name, fmt.Errorf("the object has been modified; please apply your changes to the latest version and try again"))
		}
		acc.SetNamespace(oldAcc.GetNamespace())
		acc.SetUID(oldAcc.GetUID())
		acc.SetCreationTimestamp(oldAcc.GetCreationTimestamp())
		// Only a DELETE marks an object deleted (or shortens its grace period).
		acc.SetDeletionTimestamp(oldAcc.GetDeletionTimestamp())
		acc.SetDeletionGracePeriodSeconds(oldAcc.GetDeletionGracePeriodSeconds())
		switch req.sub {
		case "status":
			obj = withStatusOf(old, obj)
		case "":
			obj = keepStatus(req.res, old, obj)
		}
		acc, _ = meta.Accessor(obj)
		acc.SetGeneration(oldAcc.GetGeneration())
		// Writes of the spec move the generation (a pod's binding does not, as upstream).
		if (req.sub == "" || req.sub == "scale") && hasSpec(obj) && specChanged(old, obj) {
			acc.SetGeneration(oldAcc.GetGeneration() + 1)
		}
		defaultObject(obj)
		if err := validate(req.res, obj); err != nil {
			return nil, err
		}
		if svc, ok := obj.(*corev1.Service); ok {
			if err := s.allocateService(ctx, svc, old.(*corev1.Service)); err != nil {
				return nil, err
			}
		}
		// The last finalizer went: the object goes.
		deleted = acc.GetDeletionTimestamp() != nil && len(acc.GetFinalizers()) == 0 && !gracePending(acc)
		result = obj
		if dry {
			return nil, errDryRun
		}
		return s.encodeForStorage(req.res, obj)
	})
	if err == errDryRun {
		return result, http.StatusOK, nil
	}
	if err != nil {
		return nil, 0, storageError(err, req.res, req.name)
	}
	acc, _ := meta.Accessor(result)
	acc.SetResourceVersion(strconv.FormatInt(kv.ModRevision, 10))
	s.wrote(req.res, key, kv.ModRevision, result.DeepCopyObject())
	if deleted {
		if _, err := s.store.Delete(ctx, key, kv.ModRevision); err != nil {
			return nil, 0, storageError(err, req.res, req.name)
		}
	}
	return result, http.StatusOK, nil
}

var errDryRun = fmt.Errorf("dry run")
