package apiserver

import (
	"fmt"
	"io"
	"net/http"
	"strings"

	jsonpatch "gopkg.in/evanphx/json-patch.v4"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer/json"
	"k8s.io/apimachinery/pkg/types"
	utiljson "k8s.io/apimachinery/pkg/util/json"
	"k8s.io/apimachinery/pkg/util/strategicpatch"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/yaml"
)

func readBody(r *http.Request) ([]byte, error) {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err != nil {
		return nil, apierrors.NewBadRequest(err.Error())
	}
	if len(body) > maxBody {
		return nil, apierrors.NewRequestEntityTooLargeError(fmt.Sprintf("limit is %d", maxBody))
	}
	return body, nil
}

// applyPatch applies a JSON, merge or strategic merge patch to the JSON of an object.
func applyPatch(pt types.PatchType, cur []byte, patch []byte, schemaObj runtime.Object) ([]byte, error) {
	switch pt {
	case types.JSONPatchType:
		p, err := jsonpatch.DecodePatch(patch)
		if err != nil {
			return nil, apierrors.NewBadRequest(fmt.Sprintf("invalid JSON patch: %v", err))
		}
		out, err := p.Apply(cur)
		if err != nil {
			return nil, apierrors.NewInvalid(schema.GroupKind{}, "", fieldErrors("patch", string(patch), err.Error()))
		}
		return out, nil
	case types.MergePatchType:
		out, err := jsonpatch.MergePatch(cur, patch)
		if err != nil {
			return nil, apierrors.NewBadRequest(fmt.Sprintf("invalid merge patch: %v", err))
		}
		return out, nil
	case types.StrategicMergePatchType:
		out, err := strategicpatch.StrategicMergePatch(cur, patch, schemaObj)
		if err != nil {
			return nil, apierrors.NewBadRequest(fmt.Sprintf("invalid strategic merge patch: %v", err))
		}
		return out, nil
	}
	return nil, statusError(http.StatusUnsupportedMediaType, metav1.StatusReasonUnsupportedMediaType, fmt.Sprintf("the body of the request was in an unknown format - accepted media types include: %s, %s, %s, %s", types.JSONPatchType, types.MergePatchType, types.StrategicMergePatchType, types.ApplyYAMLPatchType))
}

func patchType(r *http.Request) types.PatchType {
	return types.PatchType(strings.TrimSpace(strings.Split(r.Header.Get("Content-Type"), ";")[0]))
}

func (s *Server) toJSON(obj runtime.Object, gv schema.GroupVersion) ([]byte, error) {
	return runtime.Encode(codecs.EncoderForVersion(storageJSON, gv), obj)
}

// strictCodec refuses unknown and duplicate fields (fieldValidation=Strict).
var strictCodec = json.NewSerializerWithOptions(json.DefaultMetaFactory, scheme, scheme, json.SerializerOptions{Strict: true})

// fromJSON decodes a patched object, checking its fields as the request's
// fieldValidation says.
func (s *Server) fromJSON(r *http.Request, data []byte, res *resource) (runtime.Object, error) {
	obj := res.new()
	gvk := res.gvk()
	dec := runtime.Decoder(strictCodec)
	if fieldValidationOf(r) == validationIgnore {
		dec = storageJSON
	}
	_, _, err := dec.Decode(data, &gvk, obj)
	if err = checkUnknownFields(r, gvk, err); err != nil {
		if apierrors.IsBadRequest(err) {
			return nil, err
		}
		return nil, apierrors.NewBadRequest(fmt.Sprintf("the patched object is invalid: %v", err))
	}
	return obj, nil
}

func (s *Server) patch(w http.ResponseWriter, r *http.Request, req request) error {
	if req.name == "" {
		return apierrors.NewMethodNotSupported(req.res.gvr.GroupResource(), "patch")
	}
	body, err := readBody(r)
	if err != nil {
		return err
	}
	pt := patchType(r)
	apply := pt == types.ApplyYAMLPatchType || pt == types.ApplyCBORPatchType
	if err := checkPatchOptions(r, apply); err != nil {
		return err
	}
	if req.sub == "scale" {
		return s.updateScale(w, r, req, func(cur []byte) ([]byte, error) {
			return applyPatch(pt, cur, body, &autoscalingv1.Scale{})
		})
	}
	if apply {
		return s.apply(w, r, req, body)
	}
	if pt == types.StrategicMergePatchType && req.res.custom != nil {
		// Custom resources have no Go types to carry patch strategies (as upstream).
		return statusError(http.StatusUnsupportedMediaType, metav1.StatusReasonUnsupportedMediaType, fmt.Sprintf("the body of the request was in an unknown format - accepted media types include: %s, %s, %s", types.JSONPatchType, types.MergePatchType, types.ApplyYAMLPatchType))
	}
	out, code, err := s.storeUpdate(r.Context(), req, func(cur runtime.Object) (runtime.Object, error) {
		js, err := s.toJSON(cur, req.gv)
		if err != nil {
			return nil, apierrors.NewInternalError(err)
		}
		patched, err := applyPatch(pt, js, body, req.res.new())
		if err != nil {
			return nil, err
		}
		obj, err := s.fromJSON(r, patched, req.res)
		if err != nil {
			return nil, err
		}
		if req.res.custom != nil {
			if obj, err = req.res.custom.admit(r, req.res.gvk(), obj); err != nil {
				return nil, err
			}
		}
		return s.trackUpdate(r, req.res, req.sub, cur, obj), nil
	}, dryRun(r))
	if err != nil {
		return err
	}
	s.writeObject(w, r, code, out, req.gv)
	return nil
}

// checkPatchOptions refuses what upstream's PatchOptions validation refuses: force on
// anything but an apply, and an apply without a field manager.
func checkPatchOptions(r *http.Request, apply bool) error {
	q := r.URL.Query()
	gk := schema.GroupKind{Group: "meta.k8s.io", Kind: "PatchOptions"}
	if q.Has("force") && !apply {
		return apierrors.NewInvalid(gk, "", field.ErrorList{field.Forbidden(field.NewPath("force"), "may not be specified for non-apply patch")})
	}
	if apply && q.Get("fieldManager") == "" {
		return apierrors.NewInvalid(gk, "", field.ErrorList{field.Required(field.NewPath("fieldManager"), "is required for apply patch")})
	}
	return nil
}

// apply is server-side apply: the applied configuration is merged into the object by
// its managed fields (creating it if it does not exist); fields another manager owns
// with a different value are a 409 conflict unless ?force=true.
func (s *Server) apply(w http.ResponseWriter, r *http.Request, req request, body []byte) error {
	patchObj := &unstructured.Unstructured{Object: map[string]any{}}
	js, err := yaml.YAMLToJSON(body)
	if err == nil {
		err = utiljson.Unmarshal(js, &patchObj.Object)
	}
	if err != nil || patchObj.Object == nil {
		return apierrors.NewBadRequest(fmt.Sprintf("error decoding YAML: %v", err))
	}
	if gvk := patchObj.GroupVersionKind(); gvk != req.res.gvk() {
		return apierrors.NewBadRequest(fmt.Sprintf("the API version in the data (%s) does not match the expected API version (%s)", gvk.GroupVersion(), req.res.gvk().GroupVersion()))
	}
	if patchObj.GetName() != req.name {
		return apierrors.NewBadRequest(fmt.Sprintf("the name of the object (%s) does not match the name on the URL (%s)", patchObj.GetName(), req.name))
	}
	fm, err := s.fieldManager(req.res, req.sub)
	if err != nil {
		return err
	}
	manager, force := r.URL.Query().Get("fieldManager"), r.URL.Query().Get("force") == "true"
	applyTo := func(live runtime.Object) (runtime.Object, error) {
		out, err := fm.Apply(live, patchObj.DeepCopy(), manager, force)
		if err != nil {
			if _, ok := err.(apierrors.APIStatus); ok {
				return nil, err
			}
			return nil, apierrors.NewBadRequest(err.Error())
		}
		if req.res.custom != nil {
			return req.res.custom.admit(r, req.res.gvk(), out)
		}
		return out, nil
	}
	if req.sub == "" {
		if _, err := s.getObject(r.Context(), req.res, req.namespace, req.name); apierrors.IsNotFound(err) {
			obj := req.res.new()
			acc, _ := meta.Accessor(obj)
			acc.SetName(req.name)
			acc.SetNamespace(patchObj.GetNamespace())
			obj.GetObjectKind().SetGroupVersionKind(req.res.gvk())
			return s.createObject(w, r, req, obj, applyTo)
		}
	}
	out, code, err := s.storeUpdate(r.Context(), req, applyTo, dryRun(r))
	if err != nil {
		return err
	}
	s.writeObject(w, r, code, out, req.gv)
	return nil
}

// updateScale writes replicas through the scale subresource (PUT, or PATCH when
// patchFn is given).
func (s *Server) updateScale(w http.ResponseWriter, r *http.Request, req request, patchFn func([]byte) ([]byte, error)) error {
	var scale *autoscalingv1.Scale
	if patchFn == nil {
		body, err := readBody(r)
		if err != nil {
			return err
		}
		obj, err := decodeObject(r, body, schema.GroupVersionKind{Group: "autoscaling", Version: "v1", Kind: "Scale"}, func() runtime.Object { return &autoscalingv1.Scale{} })
		if err != nil {
			return err
		}
		scale = obj.(*autoscalingv1.Scale)
	}
	req.sub = ""
	out, _, err := s.storeUpdate(r.Context(), req, func(cur runtime.Object) (runtime.Object, error) {
		want := scale
		if patchFn != nil {
			sc, err := scaleFor(req.res, cur)
			if err != nil {
				return nil, err
			}
			js, _ := s.toJSON(sc, schema.GroupVersion{Group: "autoscaling", Version: "v1"})
			patched, err := patchFn(js)
			if err != nil {
				return nil, err
			}
			want = &autoscalingv1.Scale{}
			if err := runtime.DecodeInto(codecs.UniversalDecoder(), patched, want); err != nil {
				return nil, apierrors.NewBadRequest(err.Error())
			}
		}
		if want.Spec.Replicas < 0 {
			return nil, apierrors.NewInvalid(schema.GroupKind{Group: "autoscaling", Kind: "Scale"}, req.name, fieldErrors("spec.replicas", want.Spec.Replicas, "must be greater than or equal to 0"))
		}
		acc, _ := meta.Accessor(cur)
		if want.ResourceVersion != "" && want.ResourceVersion != acc.GetResourceVersion() {
			return nil, apierrors.NewConflict(req.res.gvr.GroupResource(), req.name, fmt.Errorf("the object has been modified; please apply your changes to the latest version and try again"))
		}
		setReplicasFor(req.res, cur, want.Spec.Replicas)
		return cur, nil
	}, dryRun(r))
	if err != nil {
		return err
	}
	sc, err := scaleFor(req.res, out)
	if err != nil {
		return err
	}
	s.writeObject(w, r, http.StatusOK, sc, schema.GroupVersion{Group: "autoscaling", Version: "v1"})
	return nil
}
