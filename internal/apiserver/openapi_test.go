package apiserver

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"

	openapi_v2 "github.com/google/gnostic-models/openapiv2"
	"google.golang.org/protobuf/proto"
)

// openAPIGet asks the server's OpenAPI handler for path, as an authenticated client would.
func openAPIGet(t *testing.T, s *Server, path, accept string) *httptest.ResponseRecorder {
	t.Helper()
	r := httptest.NewRequest(http.MethodGet, path, nil)
	if accept != "" {
		r.Header.Set("Accept", accept)
	}
	w := httptest.NewRecorder()
	s.serveOpenAPI(w, r)
	return w
}

func TestOpenAPIv3IndexAndDocument(t *testing.T) {
	s := New(Config{})
	w := openAPIGet(t, s, "/openapi/v3", "")
	var index struct {
		Paths map[string]struct {
			ServerRelativeURL string `json:"serverRelativeURL"`
		} `json:"paths"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &index); err != nil {
		t.Fatalf("index: %v: %s", err, w.Body)
	}
	apps, ok := index.Paths["apis/apps/v1"]
	if !ok || !strings.Contains(apps.ServerRelativeURL, "?hash=") {
		t.Fatalf("index has no hashed apps/v1: %+v", index.Paths)
	}
	w = openAPIGet(t, s, apps.ServerRelativeURL, "application/json")
	if w.Code != http.StatusOK || w.Header().Get("Etag") == "" {
		t.Fatalf("apps/v1: %d %v", w.Code, w.Header())
	}
	var doc struct {
		Paths      map[string]map[string]json.RawMessage `json:"paths"`
		Components struct {
			Schemas map[string]map[string]json.RawMessage `json:"schemas"`
		} `json:"components"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	dep, ok := doc.Components.Schemas["io.k8s.api.apps.v1.Deployment"]
	if !ok {
		t.Fatalf("no Deployment schema among %d", len(doc.Components.Schemas))
	}
	if !strings.Contains(string(dep["x-kubernetes-group-version-kind"]), `"kind":"Deployment"`) {
		t.Errorf("Deployment's GVK extension: %s", dep["x-kubernetes-group-version-kind"])
	}
	spec := string(mustJSON(t, doc.Components.Schemas["io.k8s.api.core.v1.PodSpec"]))
	for _, want := range []string{`"x-kubernetes-list-type":"map"`, `"x-kubernetes-patch-merge-key":"name"`, `"x-kubernetes-patch-strategy":"merge`} {
		if !strings.Contains(spec, want) {
			t.Errorf("PodSpec lacks %s", want)
		}
	}
	patch := string(doc.Paths["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"])
	for _, want := range []string{`"fieldValidation"`, `"fieldManager"`, `"dryRun"`, `"force"`, `"x-kubernetes-group-version-kind"`, "application/apply-patch+yaml"} {
		if !strings.Contains(patch, want) {
			t.Errorf("deployment PATCH lacks %s", want)
		}
	}
	if w := openAPIGet(t, s, "/openapi/v3/apis/nope/v1", ""); w.Code != http.StatusNotFound {
		t.Errorf("unknown group version: %d", w.Code)
	}
}

func mustJSON(t *testing.T, v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestOpenAPIv2ProtobufAndETag(t *testing.T) {
	s := New(Config{})
	w := openAPIGet(t, s, "/openapi/v2", "application/com.github.proto-openapi.spec.v2@v1.0+protobuf")
	if w.Code != http.StatusOK || w.Header().Get("Content-Type") != "application/com.github.proto-openapi.spec.v2.v1.0+protobuf" {
		t.Fatalf("protobuf v2: %d %v", w.Code, w.Header())
	}
	body, _ := io.ReadAll(w.Body)
	var doc openapi_v2.Document
	if err := proto.Unmarshal(body, &doc); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, d := range doc.GetDefinitions().GetAdditionalProperties() {
		if d.Name == "io.k8s.api.core.v1.Pod" {
			found = true
		}
	}
	if !found {
		t.Fatal("no Pod definition in the protobuf document")
	}
	etag := w.Header().Get("Etag")
	r := httptest.NewRequest(http.MethodGet, "/openapi/v2", nil)
	r.Header.Set("If-None-Match", etag)
	w = httptest.NewRecorder()
	s.serveOpenAPI(w, r)
	if w.Code != http.StatusNotModified {
		t.Errorf("If-None-Match the ETag: %d", w.Code)
	}
}

// Custom resources are in both documents, with their kind's extension, including
// schemas using what only OpenAPI v3 has (nullable, int-or-string).
func TestOpenAPIHasCustomResources(t *testing.T) {
	s := New(Config{})
	crd := testCRDObject(t)
	props := crd.Spec.Versions[1].Schema.OpenAPIV3Schema.Properties["spec"]
	props.Properties["port"] = apiextensionsv1.JSONSchemaProps{XIntOrString: true, AnyOf: []apiextensionsv1.JSONSchemaProps{{Type: "integer"}, {Type: "string"}}}
	props.Properties["note"] = apiextensionsv1.JSONSchemaProps{Type: "string", Nullable: true}
	crd.Spec.Versions[1].Schema.OpenAPIV3Schema.Properties["spec"] = props
	rs, err := customResources(crd, 1)
	if err != nil {
		t.Fatal(err)
	}
	s.reg.replace(schema.GroupResource{Group: "test.example.com", Resource: "widgets"}, rs)
	s.refreshOpenAPI()
	w := openAPIGet(t, s, "/openapi/v2", "application/com.github.proto-openapi.spec.v2@v1.0+protobuf")
	if w.Code != http.StatusOK {
		t.Fatalf("v2 protobuf with a custom resource: %d %s", w.Code, w.Body)
	}
	w = openAPIGet(t, s, "/openapi/v3/apis/test.example.com/v1", "application/json")
	body := w.Body.String()
	for _, want := range []string{`"com.example.test.v1.Widget"`, `"com.example.test.v1.WidgetList"`, `"kind":"Widget"`, `"x-kubernetes-int-or-string":true`, `"io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"`} {
		if !strings.Contains(body, want) {
			t.Errorf("the v3 document of test.example.com/v1 lacks %s", want)
		}
	}
}
