// Package server is the kubelet's HTTPS API (port 10250): container logs, exec, attach and
// port-forward for `kubectl` through the API server, on upstream kubelet's paths and query
// parameters. Streams are proxied to the URLs the CRI runtime hands out.
package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/proxy"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Config is what the server needs.
type Config struct {
	Addr     string          // ":10250"
	Cert     tls.Certificate // the serving certificate
	ClientCA *x509.CertPool  // clients must present a certificate from this CA
	Runtime  runtimeapi.RuntimeServiceClient
	Pods     func() []*corev1.Pod // for GET /pods; optional
	NodeName string               // for /stats/summary
	Healthy  func() error         // for /healthz: why the kubelet is not healthy, or nil; optional
	Log      *slog.Logger
}

// Server serves the kubelet API.
type Server struct {
	cfg Config
	log *slog.Logger
	cpu nodeCPU
}

// New returns a server; Run serves it.
func New(cfg Config) *Server {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	return &Server{cfg: cfg, log: cfg.Log}
}

// Handler is the server's routes, without TLS (tests and embedding).
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", s.healthz)
	mux.HandleFunc("GET /pods", s.pods)
	mux.HandleFunc("GET /stats/summary", s.statsSummary)
	mux.HandleFunc("GET /metrics/resource", s.metricsResource)
	mux.HandleFunc("GET /containerLogs/{ns}/{pod}/{container}", s.containerLogs)
	for _, p := range []string{"/exec/{ns}/{pod}/{container}", "/exec/{ns}/{pod}/{uid}/{container}"} {
		mux.HandleFunc(p, s.exec)
	}
	for _, p := range []string{"/attach/{ns}/{pod}/{container}", "/attach/{ns}/{pod}/{uid}/{container}"} {
		mux.HandleFunc(p, s.attach)
	}
	for _, p := range []string{"/portForward/{ns}/{pod}", "/portForward/{ns}/{pod}/{uid}"} {
		mux.HandleFunc(p, s.portForward)
	}
	return mux
}

// Run serves HTTPS on cfg.Addr until ctx is done. Only clients with a certificate signed by
// ClientCA get through the handshake.
func (s *Server) Run(ctx context.Context) error {
	if s.cfg.ClientCA == nil || len(s.cfg.Cert.Certificate) == 0 {
		return errors.New("kubelet server: a serving certificate and a client CA are required")
	}
	l, err := net.Listen("tcp", s.cfg.Addr)
	if err != nil {
		return fmt.Errorf("kubelet server: %w", err)
	}
	srv := &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: 30 * time.Second,
		TLSConfig: &tls.Config{
			Certificates: []tls.Certificate{s.cfg.Cert},
			ClientAuth:   tls.RequireAndVerifyClientCert,
			ClientCAs:    s.cfg.ClientCA,
			MinVersion:   tls.VersionTLS12,
			NextProtos:   []string{"http/1.1"}, // streams upgrade HTTP/1.1 connections
		},
		ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	}()
	s.log.Info("kubelet server listening", "addr", l.Addr().String())
	if err := srv.ServeTLS(l, "", ""); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// healthz answers "ok" while the kubelet keeps up with its runtime, 500 with the reason when not.
func (s *Server) healthz(w http.ResponseWriter, _ *http.Request) {
	if s.cfg.Healthy != nil {
		if err := s.cfg.Healthy(); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
	}
	w.Write([]byte("ok"))
}

func (s *Server) pods(w http.ResponseWriter, _ *http.Request) {
	list := corev1.PodList{}
	list.Kind, list.APIVersion = "PodList", "v1"
	if s.cfg.Pods != nil {
		for _, p := range s.cfg.Pods() {
			list.Items = append(list.Items, *p)
		}
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(list)
}

// findContainer returns the pod's container instances by that name, newest first.
func (s *Server) findContainer(ctx context.Context, ns, pod, name string) ([]*runtimeapi.Container, error) {
	resp, err := s.cfg.Runtime.ListContainers(ctx, &runtimeapi.ListContainersRequest{Filter: &runtimeapi.ContainerFilter{
		LabelSelector: map[string]string{"io.kubernetes.pod.namespace": ns, "io.kubernetes.pod.name": pod, "io.kubernetes.container.name": name},
	}})
	if err != nil {
		return nil, err
	}
	cs := resp.Containers
	sort.Slice(cs, func(i, j int) bool {
		if cs[i].Metadata.GetAttempt() != cs[j].Metadata.GetAttempt() {
			return cs[i].Metadata.GetAttempt() > cs[j].Metadata.GetAttempt()
		}
		return cs[i].CreatedAt > cs[j].CreatedAt
	})
	return cs, nil
}

// running finds the running instance of a container for exec and attach (of the pod with
// that UID when the path names one).
func (s *Server) running(w http.ResponseWriter, r *http.Request) (string, bool) {
	ns, pod, name, uid := r.PathValue("ns"), r.PathValue("pod"), r.PathValue("container"), r.PathValue("uid")
	cs, err := s.findContainer(r.Context(), ns, pod, name)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return "", false
	}
	for _, c := range cs {
		if c.State == runtimeapi.ContainerState_CONTAINER_RUNNING && (uid == "" || c.Labels["io.kubernetes.pod.uid"] == uid) {
			return c.Id, true
		}
	}
	http.Error(w, fmt.Sprintf("container %q in pod %q is not running", name, ns+"/"+pod), http.StatusNotFound)
	return "", false
}

func flag(r *http.Request, name string) bool {
	v := r.URL.Query().Get(name)
	return v == "1" || v == "true" || v == "True"
}

// streams reads upstream's stream flags: input, output, error and tty ("1"; the API server
// sends these names, clients of the kubelet's own API may say stdin, stdout, stderr). With a
// TTY there is no separate stderr, and CRI refuses the pair.
func streams(w http.ResponseWriter, r *http.Request) (stdin, stdout, stderr, tty, ok bool) {
	tty = flag(r, "tty")
	stdin = flag(r, "input") || flag(r, "stdin")
	stdout = flag(r, "output") || flag(r, "stdout")
	stderr = (flag(r, "error") || flag(r, "stderr")) && !tty
	if !stdin && !stdout && !stderr && !tty {
		http.Error(w, "you must specify at least 1 of stdin, stdout, stderr", http.StatusBadRequest)
		return false, false, false, false, false
	}
	return stdin, stdout, stderr, tty, true
}

// exec asks the runtime for an exec session and proxies the upgraded stream to it.
func (s *Server) exec(w http.ResponseWriter, r *http.Request) {
	id, ok := s.running(w, r)
	if !ok {
		return
	}
	q := r.URL.Query()
	cmd := q["command"]
	if len(cmd) == 0 {
		http.Error(w, "missing command", http.StatusBadRequest)
		return
	}
	stdin, stdout, stderr, tty, ok := streams(w, r)
	if !ok {
		return
	}
	resp, err := s.cfg.Runtime.Exec(r.Context(), &runtimeapi.ExecRequest{
		ContainerId: id, Cmd: cmd, Tty: tty, Stdin: stdin, Stdout: stdout, Stderr: stderr})
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	s.proxy(w, r, resp.Url)
}

func (s *Server) attach(w http.ResponseWriter, r *http.Request) {
	id, ok := s.running(w, r)
	if !ok {
		return
	}
	stdin, stdout, stderr, tty, ok := streams(w, r)
	if !ok {
		return
	}
	resp, err := s.cfg.Runtime.Attach(r.Context(), &runtimeapi.AttachRequest{
		ContainerId: id, Tty: tty, Stdin: stdin, Stdout: stdout, Stderr: stderr})
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	s.proxy(w, r, resp.Url)
}

// portForward asks the runtime for a port-forward session to the pod's sandbox. The ports
// travel inside the stream (SPDY headers or websocket channels), not in the URL.
func (s *Server) portForward(w http.ResponseWriter, r *http.Request) {
	ns, pod := r.PathValue("ns"), r.PathValue("pod")
	resp, err := s.cfg.Runtime.ListPodSandbox(r.Context(), &runtimeapi.ListPodSandboxRequest{Filter: &runtimeapi.PodSandboxFilter{
		State:         &runtimeapi.PodSandboxStateValue{State: runtimeapi.PodSandboxState_SANDBOX_READY},
		LabelSelector: map[string]string{"io.kubernetes.pod.namespace": ns, "io.kubernetes.pod.name": pod},
	}})
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	if len(resp.Items) == 0 {
		http.Error(w, fmt.Sprintf("pod %q has no running sandbox", ns+"/"+pod), http.StatusNotFound)
		return
	}
	if uid := r.PathValue("uid"); uid != "" && resp.Items[0].Metadata.GetUid() != uid {
		http.Error(w, fmt.Sprintf("pod %q has no instance with UID %s", ns+"/"+pod, uid), http.StatusNotFound)
		return
	}
	// SPDY clients name ports inside the stream; websocket clients name them in the query,
	// which does not reach the runtime's URL, so the runtime is told here.
	var ports []int32
	for _, p := range r.URL.Query()["port"] {
		n, err := strconv.ParseUint(p, 10, 16)
		if err != nil || n == 0 {
			http.Error(w, fmt.Sprintf("invalid port %q", p), http.StatusBadRequest)
			return
		}
		ports = append(ports, int32(n))
	}
	pf, err := s.cfg.Runtime.PortForward(r.Context(), &runtimeapi.PortForwardRequest{PodSandboxId: resp.Items[0].Id, Port: ports})
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	s.proxy(w, r, pf.Url)
}

// proxy hands the client's upgrade request to the runtime's streaming server and splices the
// two connections, as upstream's kubelet does when it does not redirect.
func (s *Server) proxy(w http.ResponseWriter, r *http.Request, raw string) {
	u, err := url.Parse(raw)
	if err != nil {
		http.Error(w, fmt.Sprintf("runtime returned a bad stream URL %q: %v", raw, err), http.StatusInternalServerError)
		return
	}
	h := proxy.NewUpgradeAwareHandler(u, nil, false, true, errorResponder{s.log})
	h.ServeHTTP(w, r)
}

type errorResponder struct{ log *slog.Logger }

func (e errorResponder) Error(w http.ResponseWriter, _ *http.Request, err error) {
	e.log.Warn("stream proxy", "err", err)
	http.Error(w, err.Error(), http.StatusInternalServerError)
}
