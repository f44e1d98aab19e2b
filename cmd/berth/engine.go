package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/berth-project/berth/internal/cri"
	"github.com/berth-project/berth/internal/dockerapi"
	"github.com/berth-project/berth/internal/engine"
	"github.com/berth-project/berth/internal/program"
	"github.com/berth-project/berth/internal/version"
)

func engineCmd() *cobra.Command {
	var cfg engine.Config
	var streamAddr string
	cmd := &cobra.Command{
		Use:   "engine",
		Short: "Run the container engine: the Docker API on RUN-DIR/docker.sock, CRI on RUN-DIR/cri.sock",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runEngine(cmd.Context(), cfg, streamAddr)
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.DataDir, "data-dir", "/var/lib/berth", "where images, containers and volumes are kept")
	f.StringVar(&cfg.RunDir, "run-dir", "/run/berth", "where sockets and run-time state are kept")
	f.StringVar(&cfg.Bridge, "bridge", "berth0", "name of the default bridge")
	f.StringVar(&cfg.BridgeCIDR, "bridge-cidr", "10.88.0.0/16", "subnet of the default bridge")
	f.StringVar(&cfg.RuntimePath, "runtime", "", "path of berth-runtime (default: next to berth, then $PATH); berth-shim sits next to it")
	f.StringVar(&cfg.CgroupParent, "cgroup-parent", "berth", "cgroup under which containers are placed")
	f.StringVar(&cfg.PodBridge, "pod-bridge", "berth-pod0", "name of the pod network's bridge (CRI pod sandboxes)")
	f.StringVar(&cfg.PodCIDR, "pod-cidr", "", "the node's pod subnet (default: the one kept from before, else the kubelet's)")
	f.StringVar(&cfg.ClusterCIDR, "cluster-cidr", "", "the cluster's pod network, reached from pods without NAT")
	f.StringVar(&streamAddr, "stream-addr", "127.0.0.1:0", "address of the CRI streaming server (exec, attach, port-forward)")
	f.StringSliceVar(&cfg.InsecureRegistries, "insecure-registry", nil, "registry (HOST:PORT or CIDR) to reach without verified TLS, or over plain HTTP; 127.0.0.0/8 always is (repeatable)")
	return cmd
}

func findRuntime(explicit string) (string, error) {
	if explicit != "" {
		return filepath.Abs(explicit)
	}
	if self, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(self), "berth-runtime")
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	for _, dir := range filepath.SplitList(os.Getenv("PATH")) {
		p := filepath.Join(dir, "berth-runtime")
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", errors.New("berth-runtime not found next to berth or on $PATH (use --runtime)")
}

func runEngine(ctx context.Context, cfg engine.Config, streamAddr string) error {
	log := logger()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	e, err := startEngine(ctx, cfg, streamAddr, log)
	if err != nil {
		return err
	}
	program.DropStartupPages()
	<-ctx.Done()
	return e.stop()
}

// runningEngine is an engine serving the Docker API and CRI on its run directory's
// sockets.
type runningEngine struct {
	eng      *engine.Engine
	criSock  string
	dockerLn net.Listener
	srv      *http.Server
	cri      *cri.Server
	log      *slog.Logger
	sock     string
	served   chan error
}

// startEngine starts the engine and serves its Docker API and CRI until stop.
func startEngine(ctx context.Context, cfg engine.Config, streamAddr string, log *slog.Logger) (*runningEngine, error) {
	cfg.Logger = log
	var err error
	if cfg.RuntimePath, err = findRuntime(cfg.RuntimePath); err != nil {
		return nil, err
	}
	for _, d := range []*string{&cfg.DataDir, &cfg.RunDir} {
		if *d, err = filepath.Abs(*d); err != nil {
			return nil, err
		}
	}
	e, err := engine.New(ctx, cfg)
	if err != nil {
		return nil, err
	}
	r := &runningEngine{eng: e, log: log, sock: filepath.Join(cfg.RunDir, "docker.sock"), criSock: filepath.Join(cfg.RunDir, "cri.sock"), served: make(chan error, 1)}
	listen := func(path string) (net.Listener, error) {
		os.Remove(path)
		ln, err := net.Listen("unix", path)
		if err != nil {
			return nil, fmt.Errorf("listen %s: %w", path, err)
		}
		return ln, os.Chmod(path, 0o660)
	}
	if r.dockerLn, err = listen(r.sock); err != nil {
		e.Close()
		return nil, err
	}
	criLn, err := listen(r.criSock)
	if err != nil {
		r.dockerLn.Close()
		e.Close()
		return nil, err
	}
	if r.cri, err = cri.NewServer(e, cri.Options{StreamAddr: streamAddr, Version: version.Version, Log: log}); err != nil {
		criLn.Close()
		r.dockerLn.Close()
		e.Close()
		return nil, err
	}
	r.srv = &http.Server{Handler: dockerapi.New(e, log, version.Version), ReadHeaderTimeout: 30 * time.Second}
	go func() {
		if err := r.cri.Serve(criLn); err != nil {
			log.Error("cri server", "err", err)
		}
	}()
	go func() { r.served <- r.srv.Serve(r.dockerLn) }()
	log.Info("engine ready", "docker", "unix://"+r.sock, "cri", "unix://"+r.criSock, "streams", r.cri.StreamURL(),
		"data", cfg.DataDir, "bridge", cfg.Bridge, "podBridge", cfg.PodBridge)
	return r, nil
}

// stop stops serving; running containers keep running.
func (r *runningEngine) stop() error {
	r.cri.Stop()
	shut, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	r.srv.Shutdown(shut)
	if err := <-r.served; err != nil && !errors.Is(err, http.ErrServerClosed) {
		r.log.Error("docker API server", "err", err)
	}
	os.Remove(r.sock)
	os.Remove(r.criSock)
	r.log.Info("engine stopped; running containers keep running")
	return r.eng.Close()
}
