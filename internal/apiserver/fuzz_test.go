package apiserver

import (
	"net/http"
	"testing"

	"k8s.io/apimachinery/pkg/types"
)

// FuzzDecodeAndPatch: request bodies (JSON, YAML, protobuf) and patches of every type, for
// a few kinds: a refusal is an error, never a panic.
func FuzzDecodeAndPatch(f *testing.F) {
	f.Add([]byte(`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"a"},"data":{"k":"v"}}`), []byte(`{"data":{"x":"y"}}`), uint8(0))
	f.Add([]byte("apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\nspec: {replicas: 2}\n"), []byte(`[{"op":"add","path":"/metadata/labels","value":{"a":"b"}}]`), uint8(1))
	f.Add([]byte("k8s\x00\n\x02v1\x12\x03Pod"), []byte(`{"spec":{"containers":[{"name":"c","image":"x"}]}}`), uint8(2))
	f.Add([]byte(`{"kind":"Pod","apiVersion":"v1","spec":{"containers":[{"name":"a"}]}}`), []byte("spec:\n  x: 1\n"), uint8(3))
	kinds := []string{"configmaps", "deployments", "pods", "services"}
	groups := map[string]string{"configmaps": "", "deployments": "apps", "pods": "", "services": ""}
	reg := newRegistry(builtins)
	cts := []string{"application/json", "application/yaml", "application/vnd.kubernetes.protobuf", ""}
	pts := []types.PatchType{types.MergePatchType, types.JSONPatchType, types.StrategicMergePatchType, types.ApplyYAMLPatchType}
	f.Fuzz(func(t *testing.T, body, patch []byte, sel uint8) {
		plural := kinds[int(sel)%len(kinds)]
		res := reg.get(groups[plural], "v1", plural)
		r, _ := http.NewRequest(http.MethodPost, "/?fieldValidation=Strict", nil)
		r.Header.Set("Content-Type", cts[int(sel/4)%len(cts)])
		obj, err := decodeObject(r, body, res.gvk(), res.new)
		if err != nil {
			return
		}
		defaultObject(obj)
		validate(res, obj)
		js, err := (&Server{}).toJSON(obj, res.gvr.GroupVersion())
		if err != nil {
			return
		}
		out, err := applyPatch(pts[int(sel/16)%len(pts)], js, patch, res.new())
		if err != nil {
			return
		}
		(&Server{}).fromJSON(r, out, res)
	})
}
