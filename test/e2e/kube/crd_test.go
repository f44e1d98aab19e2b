package kube

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/berth-project/berth/test/e2e/internal/berthserver"
)

// crdYAML is a namespaced CRD in group G with two served versions, v1 (storage) with
// status and scale subresources, printer columns, a validated schema with a default and
// a field that keeps unknown fields.
func crdYAML(group, scope string) string {
	return `apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: crontabs.` + group + `
spec:
  group: ` + group + `
  scope: ` + scope + `
  names:
    plural: crontabs
    singular: crontab
    kind: CronTab
    shortNames: [ct` + strings.ReplaceAll(strings.Split(group, ".")[0], "-", "") + `]
    categories: [all]
  versions:
  - name: v1beta1
    served: true
    storage: false
    schema:
      openAPIV3Schema:
        type: object
        x-kubernetes-preserve-unknown-fields: true
  - name: v1
    served: true
    storage: true
    subresources:
      status: {}
      scale:
        specReplicasPath: .spec.replicas
        statusReplicasPath: .status.replicas
    additionalPrinterColumns:
    - {name: Schedule, type: string, jsonPath: .spec.cronSpec}
    - {name: Replicas, type: integer, jsonPath: .spec.replicas}
    - {name: Age, type: date, jsonPath: .metadata.creationTimestamp}
    schema:
      openAPIV3Schema:
        type: object
        description: A CronTab runs an image on a schedule.
        properties:
          spec:
            type: object
            description: What to run, and when.
            required: [cronSpec]
            properties:
              cronSpec:
                type: string
                description: The schedule, in cron format.
                pattern: '^(\S+ ){4}\S+$'
              image: {type: string}
              replicas: {type: integer, minimum: 0, default: 1}
              extra:
                type: object
                x-kubernetes-preserve-unknown-fields: true
          status:
            type: object
            properties:
              replicas: {type: integer}
`
}

func crYAML(group, ns, name, spec string) string {
	meta := "  name: " + name + "\n"
	if ns != "" {
		meta += "  namespace: " + ns + "\n"
	}
	return "apiVersion: " + group + "/v1\nkind: CronTab\nmetadata:\n" + meta + "spec:\n" + spec
}

// TestCRDWithKubectl: a CRD applied with kubectl is established and its custom resources
// are served at once: apply, get by plural and short name (printer columns, defaults,
// kept unknown fields), explain, validation and strict field checks, scale and status,
// category "all"; deleting the CRD deletes them and takes the API away.
func TestCRDWithKubectl(t *testing.T) {
	need(t)
	group := uniq("kc") + ".example.com"
	short := "ct" + strings.Split(group, ".")[0]
	short = strings.ReplaceAll(short, "-", "")
	ns := uniq("crd")
	kubectl(t, "create", "namespace", ns)
	defer kubectlRun(t, nil, "delete", "namespace", ns, "--wait=false")
	defer kubectlRun(t, nil, "delete", "crd", "crontabs."+group, "--wait=false")
	mustContain(t, "apply crd", kubectlStdin(t, crdYAML(group, "Namespaced"), "apply", "-f", "-"), "created")
	kubectl(t, "wait", "--for=condition=Established", "--timeout=10s", "crd/crontabs."+group)
	mustContain(t, "accepted names", kubectl(t, "get", "crd", "crontabs."+group, "-o", "jsonpath={.status.acceptedNames.kind}"), "CronTab")

	mustContain(t, "apply cr", kubectlStdin(t, crYAML(group, ns, "nightly", "  cronSpec: \"0 3 * * *\"\n  image: backup:1\n  extra: {anything: [1, 2]}\n"), "apply", "-f", "-"), "created")
	// Client-side apply of a change: kubectl sends a JSON merge patch (the OpenAPI offers
	// no strategic merge patch for custom resources).
	mustContain(t, "apply change", kubectlStdin(t, crYAML(group, ns, "nightly", "  cronSpec: \"0 3 * * *\"\n  image: backup:2\n  extra: {anything: [1, 2]}\n"), "apply", "-f", "-"), "configured")
	table := kubectl(t, "-n", ns, "get", "crontabs")
	for _, want := range []string{"SCHEDULE", "REPLICAS", "AGE", "nightly", "0 3 * * *"} {
		mustContain(t, "get crontabs", table, want)
	}
	yaml := kubectl(t, "-n", ns, "get", short, "nightly", "-o", "yaml")
	for _, want := range []string{"apiVersion: " + group + "/v1", "replicas: 1", "anything:", "image: backup:2", "generation: 2", "uid:"} {
		mustContain(t, "get -o yaml", yaml, want)
	}
	explain := kubectl(t, "explain", "crontab.spec", "--api-version="+group+"/v1")
	for _, want := range []string{"What to run, and when.", "cronSpec", "The schedule, in cron format.", "-required-"} {
		mustContain(t, "explain", explain, want)
	}

	out, err := kubectlRun(t, []byte(crYAML(group, ns, "bad", "  cronSpec: nope\n  replicas: -1\n")), "apply", "-f", "-")
	if err == nil {
		t.Fatalf("an invalid custom resource was accepted: %s", out)
	}
	mustContain(t, "invalid", out, `The CronTab "bad" is invalid`)
	mustContain(t, "invalid pattern", out, `spec.cronSpec: Invalid value: "nope": spec.cronSpec in body should match`)
	mustContain(t, "invalid minimum", out, "spec.replicas in body should be greater than or equal to 0")
	out, err = kubectlRun(t, []byte(crYAML(group, ns, "unk", "  cronSpec: \"* * * * *\"\n  bogus: 1\n")), "apply", "-f", "-")
	if err == nil || !strings.Contains(out, `strict decoding error: unknown field "spec.bogus"`) {
		t.Fatalf("unknown field with strict validation: %v %s", err, out)
	}
	out = kubectlStdin(t, crYAML(group, ns, "unk", "  cronSpec: \"* * * * *\"\n  bogus: 1\n"), "apply", "--validate=false", "-f", "-")
	if got := kubectl(t, "-n", ns, "get", short, "unk", "-o", "jsonpath={.spec}"); strings.Contains(got, "bogus") {
		t.Fatalf("an unknown field was kept: %s", got)
	}

	kubectl(t, "-n", ns, "scale", short, "nightly", "--replicas=3")
	kubectl(t, "-n", ns, "patch", short, "nightly", "--subresource=status", "--type=merge", "-p", `{"status":{"replicas":3}}`)
	kubectl(t, "-n", ns, "patch", short, "nightly", "--type=merge", "-p", `{"status":{"replicas":9}}`)
	if got := kubectl(t, "-n", ns, "get", short, "nightly", "-o", "jsonpath={.spec.replicas} {.status.replicas} {.metadata.generation}"); got != "3 3 3" {
		t.Fatalf("after scale and status writes (spec, status, generation): %q", got)
	}
	mustContain(t, "category all", kubectl(t, "-n", ns, "get", "all"), "crontab."+group+"/nightly")

	// A changed CRD is served as changed: a new short name works once the server has it,
	// and a new default shows on objects stored before.
	changed := strings.Replace(crdYAML(group, "Namespaced"), "shortNames: [", "shortNames: [x"+short+", ", 1)
	changed = strings.Replace(changed, "image: {type: string}", "image: {type: string, default: latest}", 1)
	kubectlStdin(t, changed, "apply", "-f", "-")
	for deadline := time.Now().Add(10 * time.Second); ; {
		if out, err := kubectlRun(t, nil, "-n", ns, "get", "x"+short, "nightly", "-o", "name"); err == nil {
			mustContain(t, "new short name", out, "nightly")
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("the CRD's new short name is not served: %s", out)
		}
		time.Sleep(100 * time.Millisecond) // polling until the server follows the CRD's change
	}
	if got := kubectl(t, "-n", ns, "get", short, "unk", "-o", "jsonpath={.spec.image}"); got != "latest" {
		t.Fatalf("a default added to the CRD, on an object stored before: %q", got)
	}

	kubectl(t, "delete", "crd", "crontabs."+group)
	if out, err := kubectlRun(t, nil, "get", "--raw", "/apis/"+group+"/v1/namespaces/"+ns+"/crontabs"); err == nil {
		t.Fatalf("the custom resources are still served after their CRD went: %s", out)
	}
	mustContain(t, "recreated crd", kubectlStdin(t, crdYAML(group, "Namespaced"), "apply", "-f", "-"), "created")
	if got := kubectl(t, "get", "--raw", "/apis/"+group+"/v1/namespaces/"+ns+"/crontabs"); strings.Contains(got, "nightly") {
		t.Fatalf("deleting the CRD left its custom resources: %s", got)
	}
}

func dynamicClient(t *testing.T) (dynamic.Interface, *discovery.DiscoveryClient) {
	t.Helper()
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	dc, err := dynamic.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	disc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return dc, disc
}

// TestCRDWithDynamicClient: a cluster-scoped CRD through client-go's dynamic client:
// discovery (aggregated), every verb, both versions, selectors, watch, and the patch
// types upstream takes (strategic merge is 415).
func TestCRDWithDynamicClient(t *testing.T) {
	need(t)
	group := uniq("dyn") + ".example.com"
	kubectlStdin(t, crdYAML(group, "Cluster"), "apply", "-f", "-")
	defer kubectlRun(t, nil, "delete", "crd", "crontabs."+group, "--wait=false")
	dc, disc := dynamicClient(t)
	ctx := t.Context()

	groups, resources, err := disc.ServerGroupsAndResources()
	if err != nil {
		t.Fatal(err)
	}
	var found, preferred bool
	for _, g := range groups {
		if g.Name == group && g.PreferredVersion.Version == "v1" && len(g.Versions) == 2 {
			preferred = true
		}
	}
	for _, l := range resources {
		if l.GroupVersion != group+"/v1" {
			continue
		}
		for _, r := range l.APIResources {
			if r.Name == "crontabs" && !r.Namespaced && r.Kind == "CronTab" {
				found = true
			}
		}
	}
	if !found || !preferred {
		t.Fatalf("discovery: crontabs found %v, v1 preferred of two versions %v", found, preferred)
	}

	gvr := schema.GroupVersionResource{Group: group, Version: "v1", Resource: "crontabs"}
	ri := dc.Resource(gvr)
	w, err := ri.Watch(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	// A watcher of the other version at the same time sees the same objects in its version.
	wb, err := dc.Resource(schema.GroupVersionResource{Group: group, Version: "v1beta1", Resource: "crontabs"}).Watch(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer wb.Stop()
	mk := func(name string, labels map[string]any) *unstructured.Unstructured {
		return &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": group + "/v1", "kind": "CronTab",
			"metadata": map[string]any{"name": name, "labels": labels},
			"spec":     map[string]any{"cronSpec": "* * * * *", "image": "a"},
		}}
	}
	a, err := ri.Create(ctx, mk("a", map[string]any{"tier": "x"}), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ri.Create(ctx, mk("b", nil), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	select {
	case ev := <-w.ResultChan():
		if ev.Type != watch.Added {
			t.Fatalf("first watch event: %v", ev.Type)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no watch event for the create")
	}
	select {
	case ev := <-wb.ResultChan():
		if u, ok := ev.Object.(*unstructured.Unstructured); ev.Type != watch.Added || !ok || u.GetAPIVersion() != group+"/v1beta1" {
			t.Fatalf("first v1beta1 watch event: %v %v", ev.Type, ev.Object)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no v1beta1 watch event for the create")
	}
	if r, _, _ := unstructured.NestedInt64(a.Object, "spec", "replicas"); r != 1 {
		t.Fatalf("default replicas: %d", r)
	}
	list, err := ri.List(ctx, metav1.ListOptions{LabelSelector: "tier=x"})
	if err != nil || len(list.Items) != 1 || list.Items[0].GetName() != "a" {
		t.Fatalf("label selector: %v %v", err, list)
	}
	list, err = ri.List(ctx, metav1.ListOptions{FieldSelector: "metadata.name=b"})
	if err != nil || len(list.Items) != 1 || list.Items[0].GetName() != "b" {
		t.Fatalf("field selector: %v %v", err, list)
	}
	old, err := dc.Resource(schema.GroupVersionResource{Group: group, Version: "v1beta1", Resource: "crontabs"}).Get(ctx, "a", metav1.GetOptions{})
	if err != nil || old.GetAPIVersion() != group+"/v1beta1" {
		t.Fatalf("the other served version: %v %v", err, old)
	}
	a.Object["spec"].(map[string]any)["image"] = "b"
	if a, err = ri.Update(ctx, a, metav1.UpdateOptions{}); err != nil || a.GetGeneration() != 2 {
		t.Fatalf("update: %v (generation %d)", err, a.GetGeneration())
	}
	if _, err := ri.Patch(ctx, "a", types.MergePatchType, []byte(`{"spec":{"image":"c"}}`), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := ri.Patch(ctx, "a", types.JSONPatchType, []byte(`[{"op":"replace","path":"/spec/image","value":"d"}]`), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	_, err = ri.Patch(ctx, "a", types.StrategicMergePatchType, []byte(`{"spec":{"image":"e"}}`), metav1.PatchOptions{})
	if !apierrors.IsUnsupportedMediaType(err) {
		t.Fatalf("strategic merge patch of a custom resource: %v", err)
	}
	applied, err := ri.Apply(ctx, "c", mk("c", nil), metav1.ApplyOptions{FieldManager: "e2e"})
	if err != nil || applied.GetManagedFields()[0].Manager != "e2e" {
		t.Fatalf("apply: %v %v", err, applied)
	}
	if _, err := ri.Create(ctx, &unstructured.Unstructured{Object: map[string]any{"apiVersion": group + "/v1", "kind": "CronTab",
		"metadata": map[string]any{"name": "d"}, "spec": map[string]any{"image": "x"}}}, metav1.CreateOptions{}); !apierrors.IsInvalid(err) {
		t.Fatalf("a custom resource missing a required field: %v", err)
	} else if st := err.(apierrors.APIStatus).Status(); st.Details == nil || len(st.Details.Causes) == 0 || st.Details.Causes[0].Field != "spec.cronSpec" {
		t.Fatalf("field causes: %+v", st.Details)
	}
	if err := ri.Delete(ctx, "a", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := ri.DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{}); err != nil {
		t.Fatal(err)
	}
	if list, err := ri.List(ctx, metav1.ListOptions{}); err != nil || len(list.Items) != 0 {
		t.Fatalf("after deletecollection: %v %d left", err, len(list.Items))
	}
}

// TestCRDsSurviveRestart: a CRD and its custom resources are served by a server started
// again on the same data.
func TestCRDsSurviveRestart(t *testing.T) {
	need(t)
	dir := t.TempDir()
	kc := filepath.Join(dir, "kubeconfig")
	port := berthserver.FreePort()
	start := func() func() {
		srv, err := berthserver.StartOn(dir, port, "--disable-agent")
		if err != nil {
			t.Fatal(err)
		}
		return func() { srv.Stop(10 * time.Second) }
	}
	run := func(stdin string, args ...string) string {
		out, err := berthserver.Kubectl(t.Context(), 30*time.Second, kubectlBin, kc, []byte(stdin), args...)
		if err != nil {
			t.Fatalf("kubectl %v: %v\n%s", args, err, out)
		}
		return out
	}
	group := "restart.example.com"
	stop := start()
	run(crdYAML(group, "Namespaced"), "apply", "-f", "-")
	run(crYAML(group, "default", "kept", "  cronSpec: \"* * * * *\"\n"), "apply", "-f", "-")
	stop()
	stop = start()
	defer stop()
	mustContain(t, "after restart", run("", "get", "crontabs."+group, "-o", "name"), "crontab."+group+"/kept")
}
