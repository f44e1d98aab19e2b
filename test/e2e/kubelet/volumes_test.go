package kubelet

import (
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestEnvironmentAndVolumesReachTheContainer(t *testing.T) {
	need(t)
	ns := namespace(t)
	if _, err := cs.CoreV1().ConfigMaps(ns).Create(t.Context(), &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "cfg"},
		Data:       map[string]string{"color": "blue", "size": "large", "app.conf": "listen 80\n"},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := cs.CoreV1().Secrets(ns).Create(t.Context(), &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "creds"},
		Data:       map[string][]byte{"password": []byte("s3cret"), "user": []byte("admin")},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := cs.CoreV1().Services(ns).Create(t.Context(), &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "my-db"},
		Spec:       corev1.ServiceSpec{ClusterIP: "10.43.7.7", Ports: []corev1.ServicePort{{Name: "pg", Port: 5432}}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	yes, mode := true, int32(0o400)
	c := busybox("main", `echo "$0" > /tmp/arg0; exec sleep 3600`)
	c.WorkingDir = "/tmp"
	c.Resources = corev1.ResourceRequirements{
		Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m"), corev1.ResourceMemory: resource.MustParse("32Mi")},
		Limits:   corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("500m"), corev1.ResourceMemory: resource.MustParse("64Mi")},
	}
	c.EnvFrom = []corev1.EnvFromSource{{Prefix: "CM_", ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "cfg"}}}}
	c.Env = []corev1.EnvVar{
		{Name: "GREETING", Value: "hello"},
		{Name: "MESSAGE", Value: "$(GREETING) world, $(UNDEFINED) stays, $$(ESCAPED)"},
		{Name: "POD_NAME", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}},
		{Name: "POD_NS", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.namespace"}}},
		{Name: "POD_IP", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "status.podIP"}}},
		{Name: "NODE", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "spec.nodeName"}}},
		{Name: "APP", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.labels['app']"}}},
		{Name: "MEM_LIMIT", ValueFrom: &corev1.EnvVarSource{ResourceFieldRef: &corev1.ResourceFieldSelector{Resource: "limits.memory", Divisor: resource.MustParse("1Mi")}}},
		{Name: "COLOR", ValueFrom: &corev1.EnvVarSource{ConfigMapKeyRef: &corev1.ConfigMapKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "cfg"}, Key: "color"}}},
		{Name: "PASSWORD", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "creds"}, Key: "password"}}},
		{Name: "MISSING", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "nope"}, Key: "x", Optional: &yes}}},
	}
	c.Args = []string{"$(GREETING)"}
	c.VolumeMounts = []corev1.VolumeMount{
		{Name: "scratch", MountPath: "/scratch"},
		{Name: "mem", MountPath: "/mem"},
		{Name: "cfg", MountPath: "/etc/cfg", ReadOnly: true},
		{Name: "creds", MountPath: "/etc/creds"},
		{Name: "info", MountPath: "/etc/info"},
		{Name: "all", MountPath: "/etc/all"},
	}
	p := newPod(ns, "envvol", c)
	p.Labels["tier"] = "front"
	p.Spec.Volumes = []corev1.Volume{
		{Name: "scratch", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
		{Name: "mem", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{Medium: corev1.StorageMediumMemory}}},
		{Name: "cfg", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "cfg"}}}},
		{Name: "creds", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "creds", DefaultMode: &mode,
			Items: []corev1.KeyToPath{{Key: "password", Path: "db/password"}}}}},
		{Name: "info", VolumeSource: corev1.VolumeSource{DownwardAPI: &corev1.DownwardAPIVolumeSource{Items: []corev1.DownwardAPIVolumeFile{
			{Path: "labels", FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.labels"}},
			{Path: "name", FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}},
		}}}},
		{Name: "all", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{Sources: []corev1.VolumeProjection{
			{ConfigMap: &corev1.ConfigMapProjection{LocalObjectReference: corev1.LocalObjectReference{Name: "cfg"}, Items: []corev1.KeyToPath{{Key: "size", Path: "size"}}}},
			{Secret: &corev1.SecretProjection{LocalObjectReference: corev1.LocalObjectReference{Name: "creds"}, Items: []corev1.KeyToPath{{Key: "user", Path: "user"}}}},
			{DownwardAPI: &corev1.DownwardAPIProjection{Items: []corev1.DownwardAPIVolumeFile{{Path: "ns", FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.namespace"}}}}},
		}}}},
	}
	create(t, p)
	p = waitPod(t, ns, "envvol", 30*time.Second, "running", running)
	if p.Status.QOSClass != corev1.PodQOSBurstable {
		t.Errorf("qosClass %s", p.Status.QOSClass)
	}
	env := map[string]string{}
	for _, line := range strings.Split(execIn(t, p, "main", "env"), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			env[k] = v
		}
	}
	want := map[string]string{
		"GREETING": "hello", "MESSAGE": "hello world, $(UNDEFINED) stays, $(ESCAPED)",
		"POD_NAME": "envvol", "POD_NS": ns, "POD_IP": p.Status.PodIP, "NODE": nodeName, "APP": "envvol",
		"MEM_LIMIT": "64", "COLOR": "blue", "PASSWORD": "s3cret", "CM_color": "blue", "CM_size": "large",
		"MY_DB_SERVICE_HOST": "10.43.7.7", "MY_DB_SERVICE_PORT": "5432", "MY_DB_SERVICE_PORT_PG": "5432",
		"MY_DB_PORT": "tcp://10.43.7.7:5432", "MY_DB_PORT_5432_TCP_ADDR": "10.43.7.7",
	}
	for k, v := range want {
		if env[k] != v {
			t.Errorf("env %s=%q, want %q", k, env[k], v)
		}
	}
	if _, ok := env["MISSING"]; ok {
		t.Errorf("an optional missing secret key set MISSING")
	}
	if got := execIn(t, p, "main", "cat", "/tmp/arg0"); got != "hello\n" {
		t.Errorf("args were not expanded: %q", got)
	}
	if got := execIn(t, p, "main", "pwd"); strings.TrimSpace(got) != "/tmp" {
		t.Errorf("workingDir: %q", got)
	}
	files := map[string]string{
		"/etc/cfg/color":         "blue",
		"/etc/cfg/app.conf":      "listen 80\n",
		"/etc/creds/db/password": "s3cret",
		"/etc/info/name":         "envvol",
		"/etc/info/labels":       "app=\"envvol\"\ntier=\"front\"",
		"/etc/all/size":          "large",
		"/etc/all/user":          "admin",
		"/etc/all/ns":            ns,
	}
	for path, want := range files {
		if got := execIn(t, p, "main", "cat", path); got != want {
			t.Errorf("%s: %q, want %q", path, got, want)
		}
	}
	if got := execIn(t, p, "main", "stat", "-L", "-c", "%a", "/etc/creds/db/password"); strings.TrimSpace(got) != "400" {
		t.Errorf("secret defaultMode: %q", got)
	}
	if _, code := execCode(t, p, "main", "sh", "-c", "echo x > /etc/cfg/new"); code == 0 {
		t.Errorf("a readOnly mount was writable")
	}
	execIn(t, p, "main", "sh", "-c", "echo kept > /scratch/f && echo mem > /mem/f")
	if got := execIn(t, p, "main", "sh", "-c", "grep ' /mem ' /proc/mounts"); !strings.Contains(got, "tmpfs") {
		t.Errorf("emptyDir medium Memory is not a tmpfs: %q", got)
	}
	if got := execIn(t, p, "main", "cat", "/sys/fs/cgroup/memory/memory.limit_in_bytes"); strings.TrimSpace(got) != "67108864" {
		t.Errorf("memory limit in the container's cgroup: %q", got)
	}
}

func TestConfigMapVolumeFollowsUpdates(t *testing.T) {
	need(t)
	ns := namespace(t)
	cm, err := cs.CoreV1().ConfigMaps(ns).Create(t.Context(), &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "live"}, Data: map[string]string{"v": "one"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	c := busybox("main", "exec sleep 3600")
	c.VolumeMounts = []corev1.VolumeMount{{Name: "cfg", MountPath: "/cfg"}}
	p := newPod(ns, "follow", c)
	p.Spec.Volumes = []corev1.Volume{{Name: "cfg", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "live"}}}}}
	create(t, p)
	p = waitPod(t, ns, "follow", 30*time.Second, "running", running)
	if got := execIn(t, p, "main", "cat", "/cfg/v"); got != "one" {
		t.Fatalf("/cfg/v: %q", got)
	}
	cm.Data = map[string]string{"v": "two", "w": "new"}
	if _, err := cs.CoreV1().ConfigMaps(ns).Update(t.Context(), cm, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(70 * time.Second)
	for {
		v, _ := execCode(t, p, "main", "cat", "/cfg/v")
		w, _ := execCode(t, p, "main", "cat", "/cfg/w")
		if v == "two" && w == "new" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the update did not reach the volume: v=%q w=%q", v, w)
		}
		time.Sleep(200 * time.Millisecond) // polling for the kubelet's periodic refresh
	}
}
