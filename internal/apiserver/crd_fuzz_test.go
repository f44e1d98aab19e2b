package apiserver

import (
	"net/http"
	"net/http/httptest"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	utiljson "k8s.io/apimachinery/pkg/util/json"
	"sigs.k8s.io/yaml"
)

// FuzzCustomResource: bodies of a custom resource (decoded, pruned, defaulted,
// validated), then patched (merge, JSON) and applied (server-side): a refusal is an
// error, never a panic.
func FuzzCustomResource(f *testing.F) {
	f.Add([]byte(`{"apiVersion":"test.example.com/v1","kind":"Widget","metadata":{"name":"w"},"spec":{"color":"red"}}`), []byte(`{"spec":{"size":2}}`), uint8(0))
	f.Add([]byte("apiVersion: test.example.com/v1\nkind: Widget\nmetadata: {name: w}\nspec: {color: 1, size: x, free: {a: [1]}}\n"), []byte(`[{"op":"remove","path":"/spec"}]`), uint8(1))
	f.Add([]byte(`{"apiVersion":"test.example.com/v1alpha1","kind":"Widget","metadata":{"name":"w","managedFields":[{"manager":"x"}]},"x":null}`), []byte("apiVersion: test.example.com/v1\nkind: Widget\nmetadata: {name: w}\nspec: {color: blue, bogus: 1}\n"), uint8(2))
	rs := testWidgets(f)
	cts := []string{"application/json", "application/yaml"}
	modes := []string{"Strict", "Warn", "Ignore"}
	s := New(Config{})
	f.Fuzz(func(t *testing.T, body, patch []byte, sel uint8) {
		res := rs["v1"]
		if sel&1 == 1 {
			res = rs["v1alpha1"]
		}
		r := httptest.NewRequest(http.MethodPost, "/?fieldValidation="+modes[int(sel/2)%len(modes)], nil)
		r.Header.Set("Content-Type", cts[int(sel/8)%len(cts)])
		r = withWarnings(httptest.NewRecorder(), r)
		obj, err := decodeObject(r, body, res.gvk(), res.new)
		if err != nil {
			return
		}
		if obj, err = res.custom.admit(r, res.gvk(), obj); err != nil {
			return
		}
		validate(res, obj)
		tableFor(res, []runtime.Object{obj})
		scaleFor(res, obj)
		if fm, err := s.fieldManager(res, ""); err == nil {
			applied := &unstructured.Unstructured{Object: map[string]any{}}
			if js, err := yaml.YAMLToJSON(patch); err == nil && utiljson.Unmarshal(js, &applied.Object) == nil && applied.Object != nil {
				fm.Apply(obj.DeepCopyObject(), applied, "fuzz", sel&16 != 0)
			}
			fm.UpdateNoErrors(res.new(), obj.DeepCopyObject(), "fuzz")
		}
		js, err := s.toJSON(obj, res.gvr.GroupVersion())
		if err != nil {
			return
		}
		pt := []types.PatchType{types.MergePatchType, types.JSONPatchType}[int(sel/32)%2]
		out, err := applyPatch(pt, js, patch, res.new())
		if err != nil {
			return
		}
		if obj, err = s.fromJSON(r, out, res); err == nil {
			res.custom.admit(r, res.gvk(), obj)
		}
	})
}

// FuzzApply: apply configurations of a built-in kind merged into a live object by the
// FieldManager, as PATCH application/apply-patch+yaml does.
func FuzzApply(f *testing.F) {
	f.Add([]byte("apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\nspec: {replicas: 2, template: {spec: {containers: [{name: c, image: x}]}}}\n"), true)
	f.Add([]byte(`{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"d","managedFields":[]},"spec":{"replicas":"x"}}`), false)
	f.Add([]byte("apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\nspec: {template: {spec: {containers: [{name: c}, {name: c}]}}}\n"), false)
	s := New(Config{})
	res := s.reg.get("apps", "v1", "deployments")
	fm, err := s.fieldManager(res, "")
	if err != nil {
		f.Fatal(err)
	}
	live := &appsv1.Deployment{}
	live.Name = "d"
	live.SetGroupVersionKind(res.gvk())
	f.Fuzz(func(t *testing.T, body []byte, force bool) {
		applied := &unstructured.Unstructured{Object: map[string]any{}}
		js, err := yaml.YAMLToJSON(body)
		if err != nil || utiljson.Unmarshal(js, &applied.Object) != nil || applied.Object == nil {
			return
		}
		out, err := fm.Apply(live.DeepCopy(), applied, "fuzz", force)
		if err != nil {
			return
		}
		if out, err = fm.Apply(out, applied, "other", force); err == nil {
			validate(res, out)
		}
	})
}
