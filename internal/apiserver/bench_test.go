package apiserver

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"syscall"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apiresource "k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/berth-project/berth/internal/storage"
)

// BenchmarkPodCreateAndBind is the API's share of scheduling a pod, as bench/scheduler
// drives it: a create and a binding through HTTP (protobuf bodies), with one watcher of
// every pod (the scheduler's informer) reading the events. The client's work is only
// sending fixed bytes, so cpu-ns/op (the process's CPU per pod) is mostly the server's,
// etcd included.
func BenchmarkPodCreateAndBind(b *testing.B) {
	ctx := b.Context()
	e, err := storage.StartEmbedded(ctx, b.TempDir(), storage.EmbedOptions{})
	if err != nil {
		b.Fatal(err)
	}
	defer e.Close()
	st, err := storage.NewEtcd(storage.EtcdConfig{Embedded: e})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	s := New(Config{Store: st, Tokens: func(tok string) (User, bool) {
		return User{Name: "admin", Groups: []string{"system:masters"}}, tok == "admin"
	}})
	defer s.Close()
	if err := s.Bootstrap(ctx); err != nil {
		b.Fatal(err)
	}
	srv := httptest.NewServer(s)
	defer srv.Close()
	const pb = "application/vnd.kubernetes.protobuf"
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 128}}
	do := func(method, path string, body []byte) *http.Response {
		req, _ := http.NewRequestWithContext(ctx, method, srv.URL+path, bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer admin")
		req.Header.Set("Content-Type", pb)
		req.Header.Set("Accept", pb)
		resp, err := client.Do(req)
		if err != nil {
			return &http.Response{Status: err.Error(), Body: io.NopCloser(&bytes.Buffer{})}
		}
		return resp
	}
	watch := do(http.MethodGet, "/api/v1/pods?watch=true", nil)
	go io.Copy(io.Discard, watch.Body)
	defer watch.Body.Close()

	encode := func(obj runtime.Object) []byte {
		var buf bytes.Buffer
		info, _ := runtime.SerializerInfoForMediaType(codecs.SupportedMediaTypes(), pb)
		if err := codecs.EncoderForVersion(info.Serializer, corev1.SchemeGroupVersion).Encode(obj, &buf); err != nil {
			b.Fatal(err)
		}
		return buf.Bytes()
	}
	rl := corev1.ResourceList{corev1.ResourceCPU: apiresource.MustParse("100m"), corev1.ResourceMemory: apiresource.MustParse("500Mi")}
	var next atomic.Int64
	b.SetParallelism(32) // as many requests in flight as the benchmark's clients keep
	b.ResetTimer()
	cpu0 := cpuTime()
	b.RunParallel(func(p *testing.PB) {
		for p.Next() {
			name := fmt.Sprintf("pod-%d", next.Add(1))
			pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"}, Spec: corev1.PodSpec{Containers: []corev1.Container{{
				Name: "pause", Image: "registry.k8s.io/pause:3.10", Ports: []corev1.ContainerPort{{ContainerPort: 80}},
				Resources: corev1.ResourceRequirements{Requests: rl, Limits: rl}}}}}
			resp := do(http.MethodPost, "/api/v1/namespaces/default/pods", encode(pod))
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusCreated {
				b.Errorf("create: %s", resp.Status)
				return
			}
			binding := &corev1.Binding{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"}, Target: corev1.ObjectReference{Kind: "Node", Name: "n1"}}
			resp = do(http.MethodPost, "/api/v1/namespaces/default/pods/"+name+"/binding", encode(binding))
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusCreated {
				b.Errorf("bind: %s", resp.Status)
				return
			}
		}
	})
	b.StopTimer()
	b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N), "cpu-ns/op")
}

// cpuTime is the CPU time this process has used, user and system.
func cpuTime() int64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return ru.Utime.Nano() + ru.Stime.Nano()
}
