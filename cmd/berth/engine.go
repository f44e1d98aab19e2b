package main

import (
	"context"
	"errors"
	"fmt"
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
	cfg.Logger = log
	var err error
	if cfg.RuntimePath, err = findRuntime(cfg.RuntimePath); err != nil {
		return err
	}
	for _, d := range []*string{&cfg.DataDir, &cfg.RunDir} {
		if *d, err = filepath.Abs(*d); err != nil {
			return err
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	e, err := engine.New(ctx, cfg)
	if err != nil {
		return err
	}
	sock := filepath.Join(cfg.RunDir, "docker.sock")
	os.Remove(sock)
	ln, err := net.Listen("unix", sock)
	if err != nil {
		return fmt.Errorf("listen %s: %w", sock, err)
	}
	if err := os.Chmod(sock, 0o660); err != nil {
		return err
	}
	srv := &http.Server{Handler: dockerapi.New(e, log, version.Version), ReadHeaderTimeout: 30 * time.Second}
	criSock := filepath.Join(cfg.RunDir, "cri.sock")
	os.Remove(criSock)
	criLn, err := net.Listen("unix", criSock)
	if err != nil {
		return fmt.Errorf("listen %s: %w", criSock, err)
	}
	if err := os.Chmod(criSock, 0o660); err != nil {
		return err
	}
	criSrv, err := cri.NewServer(e, cri.Options{StreamAddr: streamAddr, Version: version.Version, Log: log})
	if err != nil {
		return err
	}
	go func() {
		if err := criSrv.Serve(criLn); err != nil {
			log.Error("cri server", "err", err)
		}
	}()
	log.Info("engine ready", "docker", "unix://"+sock, "cri", "unix://"+criSock, "streams", criSrv.StreamURL(),
		"data", cfg.DataDir, "bridge", cfg.Bridge, "podBridge", cfg.PodBridge)
	go func() {
		<-ctx.Done()
		criSrv.Stop()
		shut, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		srv.Shutdown(shut)
	}()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	os.Remove(sock)
	os.Remove(criSock)
	log.Info("engine stopped; running containers keep running")
	return e.Close()
}
