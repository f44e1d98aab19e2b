package apiserver

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/yaml"
)

const testCRD = `
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: widgets.test.example.com}
spec:
  group: test.example.com
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget, shortNames: [wd]}
  versions:
  - name: v1alpha1
    served: true
    storage: false
    schema: {openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}}
  - name: v1
    served: true
    storage: true
    subresources:
      status: {}
      scale: {specReplicasPath: .spec.size, statusReplicasPath: .status.size, labelSelectorPath: .status.selector}
    additionalPrinterColumns:
    - {name: Color, type: string, jsonPath: .spec.color}
    - {name: Size, type: integer, jsonPath: .spec.size}
    - {name: Made, type: date, jsonPath: .metadata.creationTimestamp}
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            required: [color]
            properties:
              color: {type: string, enum: [red, blue]}
              size: {type: integer, minimum: 0, default: 3}
              free: {type: object, x-kubernetes-preserve-unknown-fields: true}
          status:
            type: object
            properties:
              size: {type: integer}
              selector: {type: string}
`

func testCRDObject(t testing.TB) *apiextensionsv1.CustomResourceDefinition {
	crd := &apiextensionsv1.CustomResourceDefinition{}
	if err := yaml.UnmarshalStrict([]byte(testCRD), crd); err != nil {
		t.Fatal(err)
	}
	return crd
}

func testWidgets(t testing.TB) map[string]*resource {
	rs, err := customResources(testCRDObject(t), 1)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]*resource{}
	for _, r := range rs {
		out[r.gvr.Version] = r
	}
	return out
}

func widget(spec map[string]any) *unstructured.Unstructured {
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "test.example.com/v1", "kind": "Widget",
		"metadata": map[string]any{"name": "w", "namespace": "ns", "creationTimestamp": time.Now().Add(-time.Hour).UTC().Format(time.RFC3339)},
		"spec":     spec,
	}}
}

func TestCustomResourcesOfACRD(t *testing.T) {
	rs := testWidgets(t)
	v1, alpha := rs["v1"], rs["v1alpha1"]
	if v1 == nil || alpha == nil || !v1.namespaced || v1.kind != "Widget" || v1.shortNames[0] != "wd" {
		t.Fatalf("resources: %+v", rs)
	}
	if strings.Join(v1.subresources, ",") != "status,scale" || len(alpha.subresources) != 0 {
		t.Fatalf("subresources: v1 %v, v1alpha1 %v", v1.subresources, alpha.subresources)
	}
	if v1.custom.storageVersion != "v1" || alpha.custom.storageVersion != "v1" {
		t.Fatal("the storage version is the CRD's")
	}
	if got := customModelName(v1.gvk()); got != "com.example.test.v1.Widget" {
		t.Fatalf("model name %s", got)
	}
}

func TestCustomResourceAdmission(t *testing.T) {
	v1 := testWidgets(t)["v1"]
	for _, tt := range []struct {
		mode     string
		wantErr  bool
		warnings int
	}{{"Strict", true, 0}, {"Warn", false, 1}, {"Ignore", false, 0}} {
		w := httptest.NewRecorder()
		r := withWarnings(w, httptest.NewRequest(http.MethodPost, "/?fieldValidation="+tt.mode, nil))
		in := widget(map[string]any{"color": "red", "bogus": int64(1), "free": map[string]any{"x": "y"}})
		in.Object["metadata"].(map[string]any)["nonsense"] = "z"
		obj, err := v1.custom.admit(r, v1.gvk(), in)
		if tt.wantErr {
			if !apierrors.IsBadRequest(err) || !strings.Contains(err.Error(), `unknown field "spec.bogus"`) {
				t.Fatalf("%s: %v", tt.mode, err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%s: %v", tt.mode, err)
		}
		if got := w.Header().Values("Warning"); len(got) != 2*tt.warnings || (tt.warnings > 0 && (got[0] != `299 - "unknown field \"metadata.nonsense\""` || got[1] != `299 - "unknown field \"spec.bogus\""`)) {
			t.Errorf("%s: warnings %q", tt.mode, got)
		}
		spec := obj.(*unstructured.Unstructured).Object["spec"].(map[string]any)
		if _, kept := obj.(*unstructured.Unstructured).Object["metadata"].(map[string]any)["nonsense"]; kept {
			t.Errorf("%s: the unknown metadata field was kept", tt.mode)
		}
		if _, kept := spec["bogus"]; kept {
			t.Errorf("%s: the unknown field was kept", tt.mode)
		}
		if spec["size"] != int64(3) || spec["free"].(map[string]any)["x"] != "y" {
			t.Errorf("%s: default or preserved field missing: %v", tt.mode, spec)
		}
	}
}

func TestCustomResourceWithBadMetadata(t *testing.T) {
	v1 := testWidgets(t)["v1"]
	in := widget(map[string]any{"color": "red"})
	in.Object["metadata"].(map[string]any)["labels"] = "not a map"
	_, err := v1.custom.admit(httptest.NewRequest(http.MethodPost, "/", nil), v1.gvk(), in)
	if !apierrors.IsBadRequest(err) || !strings.Contains(err.Error(), "cannot be handled as a Widget") {
		t.Fatalf("labels of the wrong type: %v", err)
	}
}

func TestCustomResourceValidation(t *testing.T) {
	v1 := testWidgets(t)["v1"]
	err := validate(v1, widget(map[string]any{"color": "green", "size": int64(-1)}))
	st, ok := err.(apierrors.APIStatus)
	if !ok || st.Status().Code != http.StatusUnprocessableEntity {
		t.Fatalf("want a 422, got %v", err)
	}
	causes := map[string]string{}
	for _, c := range st.Status().Details.Causes {
		causes[c.Field] = string(c.Type)
	}
	if causes["spec.color"] != string(metav1.CauseTypeFieldValueNotSupported) || causes["spec.size"] != string(metav1.CauseTypeFieldValueInvalid) {
		t.Fatalf("causes: %v (%v)", causes, err)
	}
	err = validate(v1, widget(map[string]any{"size": int64(1)}))
	if err == nil || !strings.Contains(err.Error(), "spec.color: Required value") {
		t.Fatalf("missing required field: %v", err)
	}
	if err := validate(v1, widget(map[string]any{"color": "blue"})); err != nil {
		t.Fatalf("a valid widget: %v", err)
	}
}

func TestCustomResourceTableAndScale(t *testing.T) {
	v1 := testWidgets(t)["v1"]
	w := widget(map[string]any{"color": "red", "size": int64(4)})
	w.Object["status"] = map[string]any{"size": int64(2), "selector": "app=w"}
	tbl := tableFor(v1, []runtime.Object{w})
	var names []string
	for _, c := range tbl.ColumnDefinitions {
		names = append(names, c.Name)
	}
	if strings.Join(names, ",") != "Name,Color,Size,Made" {
		t.Fatalf("columns: %v", names)
	}
	if row := tbl.Rows[0].Cells; row[0] != "w" || row[1] != "red" || row[2] != int64(4) || row[3] != "60m" {
		t.Fatalf("row: %v", row)
	}
	if tbl := tableFor(testWidgets(t)["v1alpha1"], []runtime.Object{w}); len(tbl.ColumnDefinitions) != 2 || tbl.ColumnDefinitions[1].Name != "Age" {
		t.Fatalf("without printer columns: %+v", tbl.ColumnDefinitions)
	}
	sc, err := scaleFor(v1, w)
	if err != nil || sc.Spec.Replicas != 4 || sc.Status.Replicas != 2 || sc.Status.Selector != "app=w" {
		t.Fatalf("scale: %+v %v", sc, err)
	}
	setReplicasFor(v1, w, 7)
	if n, _, _ := unstructured.NestedInt64(w.Object, "spec", "size"); n != 7 {
		t.Fatalf("replicas written: %d", n)
	}
}

func TestCRDValidationAndStatus(t *testing.T) {
	crd := testCRDObject(t)
	if errs := validateCRD(crd); len(errs) != 0 {
		t.Fatalf("a good CRD: %v", errs)
	}
	bad := crd.DeepCopy()
	bad.Name = "widgets.other.com"
	bad.Spec.Versions[0].Storage = true
	bad.Spec.Versions[1].Schema.OpenAPIV3Schema.Properties["spec"] = apiextensionsv1.JSONSchemaProps{} // no type: not structural
	errs := validateCRD(bad)
	if len(errs) != 2 || errs[0].Field != "metadata.name" || errs[1].Field != "spec.versions" {
		t.Fatalf("a bad CRD: %v", errs)
	}
	bad = crd.DeepCopy()
	bad.Spec.Versions[1].Schema.OpenAPIV3Schema.Properties["spec"] = apiextensionsv1.JSONSchemaProps{}
	if errs := validateCRD(bad); len(errs) != 1 || !strings.Contains(errs[0].Detail, "type: Required value") {
		t.Fatalf("a schema that is not structural: %v", errs)
	}
	prepareCRD(crd)
	if crd.Finalizers[0] != crdCleanupFinalizer || crd.Status.AcceptedNames.Kind != "Widget" || len(crd.Status.Conditions) != 2 ||
		strings.Join(crd.Status.StoredVersions, ",") != "v1" {
		t.Fatalf("a new CRD: %+v %+v", crd.Finalizers, crd.Status)
	}
	if !statusEqual(crd.Status, crdStatus(crd)) {
		t.Fatal("the status of a prepared CRD is already what it should be")
	}
}

func TestManagerFromUserAgent(t *testing.T) {
	for ua, want := range map[string]string{
		"kubectl/v1.32.0 (linux/amd64) kubernetes/abc": "kubectl",
		"kube-controller-manager/v1.32.0":              "kube-controller-manager",
		"":                                             "",
	} {
		r := httptest.NewRequest(http.MethodPut, "/", nil)
		r.Header.Set("User-Agent", ua)
		if got := managerOf(r); got != want {
			t.Errorf("%q: %q, want %q", ua, got, want)
		}
	}
	r := httptest.NewRequest(http.MethodPut, "/?fieldManager=mine", nil)
	r.Header.Set("User-Agent", "kubectl/v1")
	if managerOf(r) != "mine" {
		t.Error("?fieldManager names the manager")
	}
}

func TestOperationPrefix(t *testing.T) {
	for gv, want := range map[schema.GroupVersion]string{
		{Version: "v1"}: "CoreV1", {Group: "apps", Version: "v1"}: "AppsV1",
		{Group: "rbac.authorization.k8s.io", Version: "v1"}: "RbacAuthorizationV1",
		{Group: "stable.example.com", Version: "v1beta1"}:   "StableExampleComV1beta1",
	} {
		if got := operationPrefix(gv); got != want {
			t.Errorf("%v: %s, want %s", gv, got, want)
		}
	}
}
