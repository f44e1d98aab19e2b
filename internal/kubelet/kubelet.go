// Package kubelet is Berth's node agent: it registers the Node, keeps its Lease, and runs the pods
// bound to it through a CRI runtime (Berth's engine or containerd). It speaks only CRI and the
// Kubernetes API.
package kubelet

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-project/berth/internal/kubelet/server"
	"github.com/berth-project/berth/internal/kubelet/volume"
)

// Config is what a kubelet needs to run one node.
type Config struct {
	Client          kubernetes.Interface
	NodeName        string
	NodeIP          net.IP // the node's InternalIP and every pod's hostIP; found from the default route when nil
	RuntimeEndpoint string // CRI runtime service socket: a path or unix:///path
	ImageEndpoint   string // CRI image service socket; RuntimeEndpoint when empty
	RootDir         string // pod directories and volumes (upstream: /var/lib/kubelet)
	PodLogDir       string // container logs, NS_NAME_UID/CONTAINER/N.log; RootDir/pods-logs when empty

	ServingAddr string          // the HTTPS server for logs/exec/attach/port-forward, ":10250"; none when empty
	ServingCert tls.Certificate // its certificate
	ClientCA    *x509.CertPool  // only clients with a certificate from this CA may use the server

	ClusterDNS         []string // nameservers for ClusterFirst pods; the host's resolv.conf when empty
	ClusterDomain      string   // "cluster.local" when empty
	NodeLabels         map[string]string
	RegisterWithTaints []corev1.Taint
	MaxPods            int // 110 when zero

	ContainerLogMaxSize  int64 // a container's log is rotated past this size; 10 MiB when zero
	ContainerLogMaxFiles int   // log files kept per container, the current one included; 5 when zero

	Log *slog.Logger
}

// Kubelet runs the pods bound to one node.
type Kubelet struct {
	cfg     Config
	log     *slog.Logger
	client  kubernetes.Interface
	runtime runtimeapi.RuntimeServiceClient
	images  runtimeapi.ImageServiceClient
	volumes *volume.Set
	conns   []interface{ Close() error }

	pods     *podSource
	services cache.SharedIndexInformer
	backoff  *backoff
	probes   *prober

	recorder record.EventRecorder

	mu         sync.Mutex
	runtimeVer *runtimeapi.VersionResponse
	sent       map[types.UID]sentStatus // by pod
	killing    map[types.UID]bool       // pods whose containers are being stopped in the background
	pressed    nodePressure             // the last reading of the node's pressure, at pressedAt
	pressedAt  time.Time

	runCtx context.Context // Run's, set before its workers start (the prober's and background kills' parent)
}

// New connects to the CRI runtime and checks the configuration; Run starts the work.
func New(cfg Config) (*Kubelet, error) {
	if cfg.Client == nil || cfg.NodeName == "" || cfg.RuntimeEndpoint == "" || cfg.RootDir == "" {
		return nil, errors.New("kubelet: Client, NodeName, RuntimeEndpoint and RootDir are required")
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.ImageEndpoint == "" {
		cfg.ImageEndpoint = cfg.RuntimeEndpoint
	}
	if cfg.PodLogDir == "" {
		cfg.PodLogDir = filepath.Join(cfg.RootDir, "pods-logs")
	}
	if cfg.ClusterDomain == "" {
		cfg.ClusterDomain = "cluster.local"
	}
	if cfg.MaxPods == 0 {
		cfg.MaxPods = 110
	}
	if cfg.ContainerLogMaxSize == 0 {
		cfg.ContainerLogMaxSize = 10 << 20
	}
	if cfg.ContainerLogMaxFiles < 2 {
		cfg.ContainerLogMaxFiles = 5
	}
	if cfg.NodeIP == nil {
		ip, err := defaultIP()
		if err != nil {
			return nil, fmt.Errorf("kubelet: node IP: %w", err)
		}
		cfg.NodeIP = ip
	}
	for _, d := range []string{cfg.RootDir, filepath.Join(cfg.RootDir, "pods"), cfg.PodLogDir} {
		if err := os.MkdirAll(d, 0o750); err != nil {
			return nil, fmt.Errorf("kubelet: %w", err)
		}
	}
	k := &Kubelet{cfg: cfg, log: cfg.Log.With("node", cfg.NodeName), client: cfg.Client, sent: map[types.UID]sentStatus{}, killing: map[types.UID]bool{}}
	rconn, err := dialCRI(cfg.RuntimeEndpoint)
	if err != nil {
		return nil, err
	}
	k.conns = append(k.conns, rconn)
	k.runtime = runtimeapi.NewRuntimeServiceClient(rconn)
	iconn := rconn
	if cfg.ImageEndpoint != cfg.RuntimeEndpoint {
		if iconn, err = dialCRI(cfg.ImageEndpoint); err != nil {
			rconn.Close()
			return nil, err
		}
		k.conns = append(k.conns, iconn)
	}
	k.images = runtimeapi.NewImageServiceClient(iconn)
	k.volumes = volume.NewSet(cfg.Client, filepath.Join(cfg.RootDir, "pods"), cfg.Log)
	k.backoff = newBackoff()
	return k, nil
}

// Run registers the node and syncs its pods until ctx is done.
func (k *Kubelet) Run(ctx context.Context) error {
	defer func() {
		for _, c := range k.conns {
			c.Close()
		}
	}()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if err := k.waitForRuntime(ctx); err != nil {
		return err
	}
	k.runCtx = ctx
	k.startEvents(ctx)
	k.services = k.newServiceInformer()
	go k.services.Run(ctx.Done())
	k.pods = newPodSource(k)
	k.probes = newProber(k)
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	run := func(f func(context.Context) error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f(ctx); err != nil && ctx.Err() == nil {
				errs <- err
				cancel()
			}
		}()
	}
	run(k.runNode)
	run(k.pods.run)
	run(k.runLogRotation)
	if k.cfg.ServingAddr != "" {
		srv := server.New(server.Config{
			Addr: k.cfg.ServingAddr, Cert: k.cfg.ServingCert, ClientCA: k.cfg.ClientCA,
			Runtime: k.runtime, Log: k.log, Pods: k.pods.list, NodeName: k.cfg.NodeName, Healthy: k.pods.healthy,
		})
		run(srv.Run)
	}
	wg.Wait()
	select {
	case err := <-errs:
		return err
	default:
		return nil
	}
}

// waitForRuntime waits until the CRI runtime answers Version, so a kubelet started beside its
// engine does not fail while the engine is still starting.
func (k *Kubelet) waitForRuntime(ctx context.Context) error {
	deadline := time.Now().Add(60 * time.Second)
	for {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		v, err := k.runtime.Version(cctx, &runtimeapi.VersionRequest{})
		cancel()
		if err == nil {
			k.mu.Lock()
			k.runtimeVer = v
			k.mu.Unlock()
			k.log.Info("container runtime ready", "runtime", v.RuntimeName, "version", v.RuntimeVersion, "endpoint", k.cfg.RuntimeEndpoint)
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("kubelet: container runtime at %s: %w", k.cfg.RuntimeEndpoint, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}
