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

	"github.com/berth-project/berth/internal/dockerapi"
	"github.com/berth-project/berth/internal/engine"
	"github.com/berth-project/berth/internal/version"
)

func engineCmd() *cobra.Command {
	var cfg engine.Config
	cmd := &cobra.Command{
		Use:   "engine",
		Short: "Run the container engine: the Docker API on RUN-DIR/docker.sock",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runEngine(cmd.Context(), cfg)
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.DataDir, "data-dir", "/var/lib/berth", "where images, containers and volumes are kept")
	f.StringVar(&cfg.RunDir, "run-dir", "/run/berth", "where sockets and run-time state are kept")
	f.StringVar(&cfg.Bridge, "bridge", "berth0", "name of the default bridge")
	f.StringVar(&cfg.BridgeCIDR, "bridge-cidr", "10.88.0.0/16", "subnet of the default bridge")
	f.StringVar(&cfg.RuntimePath, "runtime", "", "path of berth-runtime (default: next to berth, then $PATH); berth-shim sits next to it")
	f.StringVar(&cfg.CgroupParent, "cgroup-parent", "berth", "cgroup under which containers are placed")
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

func runEngine(ctx context.Context, cfg engine.Config) error {
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
	log.Info("engine ready", "docker", "unix://"+sock, "data", cfg.DataDir, "bridge", cfg.Bridge)
	go func() {
		<-ctx.Done()
		shut, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		srv.Shutdown(shut)
	}()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	os.Remove(sock)
	log.Info("engine stopped; running containers keep running")
	return e.Close()
}
