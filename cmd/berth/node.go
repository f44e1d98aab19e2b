package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"

	"github.com/spf13/pflag"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/berth-project/berth/internal/engine"
	"github.com/berth-project/berth/internal/kubelet"
	"github.com/berth-project/berth/internal/pki"
)

// nodeConfig is what a node agent needs: where to keep things, who it is, and how its
// pods are networked. `berth server` and `berth agent` share it.
type nodeConfig struct {
	dataDir, runDir    string
	nodeName, nodeIP   string
	kubeletPort        int
	runtimeEndpoint    string // another CRI runtime instead of Berth's engine
	bridge, bridgeCIDR string
	podBridge          string
	clusterCIDR        string
	streamAddr         string
	cgroupParent       string
	labels             map[string]string
}

func (c *nodeConfig) flags(f *pflag.FlagSet) {
	f.StringVar(&c.nodeIP, "node-ip", "", "the node's address (default: the address of the default route)")
	f.IntVar(&c.kubeletPort, "kubelet-port", 10250, "HTTPS port of the kubelet (logs, exec, attach, port-forward)")
	f.StringVar(&c.runtimeEndpoint, "container-runtime-endpoint", "", "use this CRI socket (e.g. containerd's) instead of Berth's own engine")
	f.StringVar(&c.bridge, "bridge", "berth0", "the engine's default bridge (docker run)")
	f.StringVar(&c.bridgeCIDR, "bridge-cidr", "10.88.0.0/16", "subnet of the engine's default bridge")
	f.StringVar(&c.podBridge, "pod-bridge", "berth-pod0", "the bridge of this node's pods")
	f.StringVar(&c.cgroupParent, "cgroup-parent", "berth", "cgroup under which the node's containers are placed")
	f.StringToStringVar(&c.labels, "node-label", nil, "labels the node registers with (KEY=VALUE, repeatable)")
}

// defaultNodeIP is the source address of the default route, found without sending.
func defaultNodeIP() net.IP {
	c, err := net.Dial("udp4", "192.0.2.1:9")
	if err != nil {
		return net.IPv4(127, 0, 0, 1)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).IP
}

// runNode runs a node until ctx ends: the engine (serving the Docker API and CRI on
// RUN-DIR) unless another runtime is given, and the kubelet over CRI with the node's
// credentials.
func runNode(ctx context.Context, log *slog.Logger, c nodeConfig, creds pki.NodeCredentials, apiServer string) error {
	ip := net.ParseIP(c.nodeIP)
	if ip == nil {
		ip = defaultNodeIP()
	}
	endpoint := c.runtimeEndpoint
	if endpoint == "" {
		eng, err := startEngine(ctx, engine.Config{
			DataDir: filepath.Join(c.dataDir, "engine"), RunDir: c.runDir,
			Bridge: c.bridge, BridgeCIDR: c.bridgeCIDR, CgroupParent: c.cgroupParent,
			PodBridge: c.podBridge, ClusterCIDR: c.clusterCIDR,
		}, c.streamAddr, log.With("component", "engine"))
		if err != nil {
			return fmt.Errorf("engine: %w", err)
		}
		defer eng.stop()
		endpoint = filepath.Join(c.runDir, "cri.sock")
	}
	restCfg := &rest.Config{
		Host:            apiServer,
		TLSClientConfig: rest.TLSClientConfig{CAData: creds.CA, CertData: creds.ClientCert, KeyData: creds.ClientKey},
		UserAgent:       "berth-kubelet/" + c.nodeName,
		ContentConfig:   rest.ContentConfig{ContentType: "application/vnd.kubernetes.protobuf"}, // as upstream's kubelet
		QPS:             200, Burst: 400,
	}
	cs, err := kubernetes.NewForConfig(restCfg)
	if err != nil {
		return err
	}
	serving, err := tls.X509KeyPair(creds.ServingCert, creds.ServingKey)
	if err != nil {
		return fmt.Errorf("kubelet serving certificate: %w", err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(creds.CA)
	kl, err := kubelet.New(kubelet.Config{
		Client: cs, NodeName: c.nodeName, NodeIP: ip, RuntimeEndpoint: endpoint,
		RootDir: filepath.Join(c.dataDir, "kubelet"), PodLogDir: filepath.Join(c.dataDir, "pod-logs"),
		ServingAddr: ":" + strconv.Itoa(c.kubeletPort), ServingCert: serving, ClientCA: pool,
		NodeLabels: c.labels, Log: log.With("component", "kubelet"),
	})
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Join(c.dataDir, "kubelet"), 0o700); err != nil {
		return err
	}
	log.Info("node agent starting", "node", c.nodeName, "ip", ip, "runtime", endpoint)
	return kl.Run(ctx)
}

// nodeAddresses are what a node's serving certificate must cover.
func nodeAddresses(c nodeConfig) []string {
	ip := c.nodeIP
	if ip == "" {
		ip = defaultNodeIP().String()
	}
	host, _ := os.Hostname()
	return []string{ip, "127.0.0.1", host}
}
