package kubelet

import (
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

func TestHTTPProbeAction(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Check") != "yes" || !strings.HasPrefix(r.UserAgent(), "kube-probe/") {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		switch r.URL.Path {
		case "/ok":
			w.WriteHeader(http.StatusOK)
		case "/moved":
			http.Redirect(w, r, "/ok", http.StatusFound)
		default:
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	defer srv.Close()
	host, port, _ := net.SplitHostPort(strings.TrimPrefix(srv.URL, "http://"))
	c := &corev1.Container{Ports: []corev1.ContainerPort{{Name: "web", ContainerPort: int32(mustAtoi(port))}}}
	for path, ok := range map[string]bool{"/ok": true, "/moved": true, "/down": false} {
		_, err := httpAction(t.Context(), c, host, &corev1.HTTPGetAction{Path: path, Port: intstr.FromString("web"),
			HTTPHeaders: []corev1.HTTPHeader{{Name: "X-Check", Value: "yes"}}})
		if (err == nil) != ok {
			t.Errorf("%s: err %v, want success %v", path, err, ok)
		}
	}
	if _, err := resolvePort(intstr.FromString("nope"), c); err == nil {
		t.Errorf("an unknown named port resolved")
	}
}

func TestGRPCProbeAction(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := grpc.NewServer()
	h := health.NewServer()
	healthpb.RegisterHealthServer(s, h)
	go s.Serve(l)
	defer s.Stop()
	port := int32(l.Addr().(*net.TCPAddr).Port)
	svc := "db"
	h.SetServingStatus("db", healthpb.HealthCheckResponse_SERVING)
	ctx := t.Context()
	if _, err := grpcAction(ctx, "127.0.0.1", &corev1.GRPCAction{Port: port, Service: &svc}); err != nil {
		t.Errorf("serving: %v", err)
	}
	h.SetServingStatus("db", healthpb.HealthCheckResponse_NOT_SERVING)
	if _, err := grpcAction(ctx, "127.0.0.1", &corev1.GRPCAction{Port: port, Service: &svc}); err == nil {
		t.Errorf("not serving passed")
	}
	l.Close()
	s.Stop()
	tctx, cancel := contextWithTimeout(t, time.Second)
	defer cancel()
	if _, err := grpcAction(tctx, "127.0.0.1", &corev1.GRPCAction{Port: port}); err == nil {
		t.Errorf("a closed port passed")
	}
}

func mustAtoi(s string) int {
	n, _ := strconv.Atoi(s)
	return n
}
