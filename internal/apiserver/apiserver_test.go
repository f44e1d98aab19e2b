package apiserver

import (
	"net/http"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
)

func TestImagePullPolicyDefault(t *testing.T) {
	for image, want := range map[string]corev1.PullPolicy{
		"nginx": corev1.PullAlways, "nginx:latest": corev1.PullAlways, "nginx:1.25": corev1.PullIfNotPresent,
		"127.0.0.1:5000/app": corev1.PullAlways, "127.0.0.1:5000/app:1": corev1.PullIfNotPresent,
		"app@sha256:abcd": corev1.PullIfNotPresent,
	} {
		c := corev1.Container{Image: image}
		defaultContainer(&c)
		if c.ImagePullPolicy != want {
			t.Errorf("%s: %s, want %s", image, c.ImagePullPolicy, want)
		}
	}
}

func TestDeploymentDefaults(t *testing.T) {
	d := &appsv1.Deployment{Spec: appsv1.DeploymentSpec{Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "x:1"}}}}}}
	defaultObject(d)
	s := d.Spec
	if *s.Replicas != 1 || s.Strategy.RollingUpdate.MaxSurge.String() != "25%" || s.Strategy.RollingUpdate.MaxUnavailable.String() != "25%" ||
		*s.RevisionHistoryLimit != 10 || *s.ProgressDeadlineSeconds != 600 {
		t.Fatalf("deployment defaults: %+v", s)
	}
	ps := s.Template.Spec
	if ps.RestartPolicy != corev1.RestartPolicyAlways || ps.DNSPolicy != corev1.DNSClusterFirst || *ps.TerminationGracePeriodSeconds != 30 {
		t.Fatalf("pod template defaults: %+v", ps)
	}
}

func TestOutputNegotiation(t *testing.T) {
	tests := []struct {
		accept    string
		table     bool
		wantType  string
		wantTable bool
		wantErr   bool
	}{
		{"", false, "application/json", false, false},
		{"application/json;as=Table;v=v1;g=meta.k8s.io,application/json", true, "application/json", true, false},
		{"application/json;as=Table;v=v1;g=meta.k8s.io,application/json", false, "application/json", false, false},
		{"application/vnd.kubernetes.protobuf,application/json", false, "application/vnd.kubernetes.protobuf", false, false},
		{"application/yaml", false, "application/yaml", false, false},
		{"text/html", false, "", false, true},
	}
	for _, tt := range tests {
		r, _ := http.NewRequest("GET", "/", nil)
		r.Header.Set("Accept", tt.accept)
		info, asTable, err := outputFor(r, tt.table)
		if (err != nil) != tt.wantErr || (err == nil && (info.MediaType != tt.wantType || asTable != tt.wantTable)) {
			t.Errorf("Accept %q: %s table=%v err=%v", tt.accept, info.MediaType, asTable, err)
		}
	}
}

func TestFieldSelectors(t *testing.T) {
	pods := registryFor(t, "", "v1", "pods")
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "a", Namespace: "ns"}, Spec: corev1.PodSpec{NodeName: "n1"}, Status: corev1.PodStatus{Phase: corev1.PodRunning}}
	for sel, want := range map[string]bool{
		"spec.nodeName=n1": true, "spec.nodeName=n2": false, "status.phase!=Running": false,
		"metadata.name=a,metadata.namespace=ns": true,
	} {
		fs, err := fields.ParseSelector(sel)
		if err != nil {
			t.Fatal(err)
		}
		if err := checkFieldSelector(pods, fs); err != nil {
			t.Fatalf("%s refused: %v", sel, err)
		}
		if got := matches(pods, p, labels.Everything(), fs); got != want {
			t.Errorf("%s: %v, want %v", sel, got, want)
		}
	}
	bad, _ := fields.ParseSelector("spec.bogus=x")
	if checkFieldSelector(pods, bad) == nil {
		t.Error("an unknown field label was accepted")
	}
}

func registryFor(t *testing.T, group, version, plural string) *resource {
	t.Helper()
	r := newRegistry(builtins).get(group, version, plural)
	if r == nil {
		t.Fatalf("%s/%s %s not served", group, version, plural)
	}
	return r
}

func TestTableColumnsMatchUpstream(t *testing.T) {
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", CreationTimestamp: metav1.Now()},
		Spec:   corev1.PodSpec{Containers: []corev1.Container{{Name: "a"}, {Name: "b"}}, NodeName: "n1"},
		Status: corev1.PodStatus{Phase: corev1.PodRunning, PodIP: "10.42.0.5", ContainerStatuses: []corev1.ContainerStatus{{Ready: true, RestartCount: 2}, {RestartCount: 1}}}}
	tab := table("Pod", []runtime.Object{p}, true)
	var names []string
	for _, c := range tab.ColumnDefinitions {
		names = append(names, c.Name)
	}
	want := []string{"Name", "Ready", "Status", "Restarts", "Age", "IP", "Node", "Nominated Node", "Readiness Gates"}
	if len(names) != len(want) {
		t.Fatalf("columns %v, want %v", names, want)
	}
	for i := range want {
		if names[i] != want[i] {
			t.Fatalf("columns %v, want %v", names, want)
		}
	}
	row := tab.Rows[0].Cells
	if row[1] != "1/2" || row[2] != "Running" || row[3] != "3" || row[5] != "10.42.0.5" || row[6] != "n1" {
		t.Fatalf("row %v", row)
	}
	if tab.ColumnDefinitions[5].Priority != 1 || tab.ColumnDefinitions[4].Priority != 0 {
		t.Fatal("wide columns must have priority 1, AGE 0")
	}
}

func TestValidateNames(t *testing.T) {
	cm := registryFor(t, "", "v1", "configmaps")
	ns := registryFor(t, "", "v1", "namespaces")
	for _, tt := range []struct {
		res  *resource
		obj  runtime.Object
		fail bool
	}{
		{cm, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "a.b-c"}}, false},
		{cm, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "Bad_Name"}}, true},
		{ns, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "a.b"}}, true},
		{cm, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "ok", Labels: map[string]string{"bad key!": "v"}}}, true},
	} {
		err := validate(tt.res, tt.obj)
		if (err != nil) != tt.fail {
			t.Errorf("%T %v: err=%v, want failure=%v", tt.obj, tt.obj.(metav1.Object).GetName(), err, tt.fail)
		}
	}
}

func TestRuleAllows(t *testing.T) {
	rule := rbacv1.PolicyRule{Verbs: []string{"get", "list"}, APIGroups: []string{"apps"}, Resources: []string{"deployments", "deployments/scale"}, ResourceNames: []string{"web"}}
	for _, tt := range []struct {
		a    attributes
		want bool
	}{
		{attributes{verb: "get", group: "apps", resource: "deployments", name: "web"}, true},
		{attributes{verb: "get", group: "apps", resource: "deployments", name: "api"}, false},
		{attributes{verb: "list", group: "apps", resource: "deployments"}, false}, // resourceNames need a name
		{attributes{verb: "get", group: "apps", resource: "deployments", sub: "scale", name: "web"}, true},
		{attributes{verb: "get", group: "apps", resource: "deployments", sub: "status", name: "web"}, false},
		{attributes{verb: "delete", group: "apps", resource: "deployments", name: "web"}, false},
		{attributes{verb: "get", group: "", resource: "deployments", name: "web"}, false},
	} {
		if got := ruleAllows(rule, tt.a); got != tt.want {
			t.Errorf("%s: %v, want %v", tt.a, got, tt.want)
		}
	}
	urls := rbacv1.PolicyRule{Verbs: []string{"get"}, NonResourceURLs: []string{"/apis/*", "/version"}}
	if !ruleAllows(urls, attributes{verb: "get", path: "/apis/apps/v1"}) || ruleAllows(urls, attributes{verb: "get", path: "/metrics"}) {
		t.Error("non-resource URL matching")
	}
}

func TestKeepStatusCopiesTheStoredStatus(t *testing.T) {
	pods := registryFor(t, "", "v1", "pods")
	stored := &corev1.Pod{Status: corev1.PodStatus{Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}}}
	cur := keepStatus(pods, stored, &corev1.Pod{}).(*corev1.Pod)
	if len(cur.Status.Conditions) != 1 {
		t.Fatalf("status not kept: %+v", cur.Status)
	}
	cur.Status.Conditions[0].Status = corev1.ConditionFalse
	if stored.Status.Conditions[0].Status != corev1.ConditionTrue {
		t.Fatal("changing the written object's status changed the stored object's (shared by the watch)")
	}
}
