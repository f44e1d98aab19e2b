package apiserver

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// OpenAPI v3, so far as clients need it to talk to the server: one document per group
// version with every resource's paths, and on each PATCH the GVK extension and the
// query parameters kubectl looks for (fieldValidation, dryRun, fieldManager), which is
// how `kubectl apply` and `create -f` learn to validate server-side (Strict). The
// schemas of the types are not served yet, so `kubectl explain` does not work.

// gvPath is the OpenAPI v3 name of a group version: "api/v1", "apis/apps/v1".
func gvPath(gv schema.GroupVersion) string {
	if gv.Group == "" {
		return "api/" + gv.Version
	}
	return "apis/" + gv.Group + "/" + gv.Version
}

func (s *Server) openAPIDoc(gv schema.GroupVersion) []byte {
	query := func(name, desc string) map[string]any {
		return map[string]any{"name": name, "in": "query", "description": desc, "schema": map[string]any{"type": "string"}, "uniqueItems": true}
	}
	writeParams := []any{
		query("dryRun", "When present, indicates that modifications should not be persisted."),
		query("fieldManager", "fieldManager is a name associated with the actor or entity that is making these changes."),
		query("fieldValidation", "fieldValidation instructs the server on how to handle objects in the request containing unknown or duplicate fields: Ignore, Warn or Strict."),
	}
	paths := map[string]any{}
	for _, r := range s.reg.in(gv) {
		gvk := map[string]string{"group": r.gvr.Group, "version": r.gvr.Version, "kind": r.kind}
		op := func(action string, params []any) map[string]any {
			return map[string]any{
				"x-kubernetes-action": action, "x-kubernetes-group-version-kind": gvk,
				"operationId": action + strings.ToUpper(r.kind[:1]) + r.kind[1:], "parameters": params,
				"responses": map[string]any{"200": map[string]any{"description": "OK"}, "401": map[string]any{"description": "Unauthorized"}},
			}
		}
		base := "/" + gvPath(gv) + "/"
		if r.namespaced {
			base += "namespaces/{namespace}/"
		}
		coll := base + r.gvr.Resource
		paths[coll] = map[string]any{"get": op("list", nil), "post": op("post", writeParams), "delete": op("deletecollection", nil)}
		paths[coll+"/{name}"] = map[string]any{
			"get": op("get", nil), "put": op("put", writeParams), "delete": op("delete", nil),
			"patch": op("patch", append(append([]any{}, writeParams...), query("force", "Force is going to force Apply requests."))),
		}
	}
	doc := map[string]any{
		"openapi": "3.0.0", "info": map[string]any{"title": "Kubernetes", "version": s.version.GitVersion},
		"paths": paths, "components": map[string]any{"schemas": map[string]any{}},
	}
	data, _ := json.Marshal(doc)
	return data
}

func (s *Server) serveOpenAPIv3(w http.ResponseWriter, r *http.Request, rest string) {
	docs := map[string][]byte{}
	for _, gv := range s.reg.groups() {
		docs[gvPath(gv)] = s.openAPIDoc(gv)
	}
	w.Header().Set("Content-Type", "application/json")
	if rest == "" {
		index := map[string]any{}
		for p, d := range docs {
			sum := sha256.Sum256(d)
			index[p] = map[string]string{"serverRelativeURL": "/openapi/v3/" + p + "?hash=" + strings.ToUpper(hex.EncodeToString(sum[:]))}
		}
		json.NewEncoder(w).Encode(map[string]any{"paths": index})
		return
	}
	d, ok := docs[rest]
	if !ok {
		s.writeError(w, r, apierrors.NewNotFound(schema.GroupResource{}, "/openapi/v3/"+rest))
		return
	}
	w.Write(d)
}
