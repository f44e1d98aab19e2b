package main

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	goruntime "runtime"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/version"

	"github.com/berth-project/berth/internal/apiserver"
	"github.com/berth-project/berth/internal/pki"
	"github.com/berth-project/berth/internal/storage"
	bversion "github.com/berth-project/berth/internal/version"
)

type serverConfig struct {
	dataDir, runDir, kubeconfig, nodeName, advertise string
	apiPort                                          int
	etcdEndpoints                                    []string
	etcdCA, etcdCert, etcdKey                        string
	disableAgent, disableScheduler, disableCM        bool
	clusterCIDR                                      string
	node                                             nodeConfig
	nodeGrace                                        time.Duration
}

func serverCmd() *cobra.Command {
	var c serverConfig
	cmd := &cobra.Command{
		Use:   "server",
		Short: "Run the Kubernetes control plane: the API server over etcd (embedded unless --etcd-endpoints)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runServer(cmd.Context(), c)
		},
	}
	f := cmd.Flags()
	f.StringVar(&c.dataDir, "data-dir", "/var/lib/berth/server", "where etcd's data, certificates and keys are kept")
	f.StringVar(&c.runDir, "run-dir", "/run/berth/server", "where run-time state is kept")
	f.IntVar(&c.apiPort, "api-port", 6443, "HTTPS port of the Kubernetes API")
	f.StringVar(&c.kubeconfig, "kubeconfig", "", "where to write the admin kubeconfig (default DATA-DIR/admin.kubeconfig)")
	f.StringVar(&c.nodeName, "node-name", "", "this node's name (default: the host name)")
	f.StringVar(&c.advertise, "advertise-address", "127.0.0.1", "the address clients and nodes reach the API on")
	f.StringSliceVar(&c.etcdEndpoints, "etcd-endpoints", nil, "use this etcd cluster instead of an embedded one (URLs)")
	f.StringVar(&c.etcdCA, "etcd-cafile", "", "CA of the external etcd's certificates")
	f.StringVar(&c.etcdCert, "etcd-certfile", "", "client certificate for the external etcd")
	f.StringVar(&c.etcdKey, "etcd-keyfile", "", "client key for the external etcd")
	f.BoolVar(&c.disableAgent, "disable-agent", false, "do not run a node agent in this process")
	c.node.flags(f)
	f.BoolVar(&c.disableScheduler, "disable-scheduler", false, "do not run the scheduler in this process")
	f.BoolVar(&c.disableCM, "disable-controller-manager", false, "do not run the controllers in this process")
	f.DurationVar(&c.nodeGrace, "node-monitor-grace-period", 40*time.Second, "how long a node may miss heartbeats before it is marked unreachable")
	f.StringVar(&c.clusterCIDR, "cluster-cidr", "10.42.0.0/16", "pod addresses: each node gets a /24 of it")
	return cmd
}

func runServer(parent context.Context, c serverConfig) error {
	if parent == nil {
		parent = context.Background()
	}
	ctx, stop := signal.NotifyContext(parent, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	log := logger()
	start := time.Now()
	for _, d := range []string{c.dataDir, c.runDir} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return err
		}
	}
	if c.kubeconfig == "" {
		c.kubeconfig = filepath.Join(c.dataDir, "admin.kubeconfig")
	}
	if c.nodeName == "" {
		c.nodeName, _ = os.Hostname()
	}

	secrets, err := storage.NewAESGCM(filepath.Join(c.dataDir, "secrets.key"), []string{"/registry/secrets/"})
	if err != nil {
		return fmt.Errorf("encryption key: %w", err)
	}
	ecfg := storage.EtcdConfig{Endpoints: c.etcdEndpoints, Transformer: secrets}
	if len(c.etcdEndpoints) == 0 {
		emb, err := storage.StartEmbedded(ctx, filepath.Join(c.dataDir, "etcd"), storage.EmbedOptions{})
		if err != nil {
			return fmt.Errorf("etcd: %w", err)
		}
		defer emb.Close()
		ecfg.Embedded = emb // in-process: no gRPC between the API server and its own etcd
	} else if c.etcdCA != "" || c.etcdCert != "" {
		if ecfg.TLS, err = storage.TLSFromFiles(c.etcdCA, c.etcdCert, c.etcdKey); err != nil {
			return err
		}
	}
	store, err := storage.NewEtcd(ecfg)
	if err != nil {
		return fmt.Errorf("etcd: %w", err)
	}
	defer store.Close()
	etcdReady := time.Since(start)

	pkiDir := filepath.Join(c.dataDir, "pki")
	ca, err := pki.LoadOrCreateCA(pkiDir, "berth-ca")
	if err != nil {
		return fmt.Errorf("CA: %w", err)
	}
	host, _ := os.Hostname()
	ips := []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback, net.IPv4(10, 43, 0, 1)}
	if ip := net.ParseIP(c.advertise); ip != nil && !ip.IsLoopback() {
		ips = append(ips, ip)
	}
	serving, err := ca.IssueServing(pkiDir, "apiserver", []string{"localhost", host, "kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"}, ips)
	if err != nil {
		return fmt.Errorf("serving certificate: %w", err)
	}
	tokens, err := pki.OpenTokens(filepath.Join(c.dataDir, "tokens.json"))
	if err != nil {
		return fmt.Errorf("tokens: %w", err)
	}

	joinToken, joinSecret, err := nodeToken(filepath.Join(c.dataDir, "node-token"), ca.CertPEM())
	if err != nil {
		return fmt.Errorf("node token: %w", err)
	}
	kubeletClient, err := kubeletTransport(ca, pkiDir)
	if err != nil {
		return err
	}
	saKey, err := pki.LoadOrCreateKey(filepath.Join(pkiDir, "sa.key"))
	if err != nil {
		return fmt.Errorf("service account key: %w", err)
	}

	minor := strings.Split(strings.TrimPrefix(bversion.Kubernetes, "v"), ".")
	srv := apiserver.New(apiserver.Config{
		Store: store, Log: log, Advertise: net.ParseIP(c.advertise), APIPort: c.apiPort, ServiceAccountKey: saKey, Kubelets: kubeletClient,
		Tokens: func(t string) (apiserver.User, bool) {
			user, groups, ok := tokens.Lookup(t)
			return apiserver.User{Name: user, Groups: groups}, ok
		},
		Version: version.Info{
			Major: minor[0], Minor: minor[1], GitVersion: bversion.Kubernetes + "+berth", GitCommit: bversion.Version,
			GoVersion: goruntime.Version(), Compiler: "gc", Platform: "linux/" + goruntime.GOARCH,
		},
	})
	defer srv.Close()
	if err := srv.Bootstrap(ctx); err != nil {
		return fmt.Errorf("bootstrap: %w", err)
	}

	ln, err := net.Listen("tcp", fmt.Sprintf(":%d", c.apiPort))
	if err != nil {
		return err
	}
	hs := &http.Server{
		Handler:           pki.JoinHandler(ca, joinSecret, srv),
		ReadHeaderTimeout: 30 * time.Second,
		TLSConfig: &tls.Config{
			Certificates: []tls.Certificate{serving}, ClientCAs: ca.Pool(), ClientAuth: tls.VerifyClientCertIfGiven,
			MinVersion: tls.VersionTLS12, NextProtos: []string{"h2", "http/1.1"},
		},
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelDebug),
		// As kube-apiserver's --http2-max-streams-per-connection: client-go multiplexes
		// every watch of a client over one connection.
		HTTP2: &http.HTTP2Config{MaxConcurrentStreams: 1000},
	}
	errc := make(chan error, 1)
	go func() { errc <- hs.ServeTLS(ln, "", "") }()

	certPEM, keyPEM, err := ca.IssueClient(pkiDir, "admin", "kubernetes-admin", []string{"system:masters"})
	if err != nil {
		return fmt.Errorf("admin certificate: %w", err)
	}
	server := fmt.Sprintf("https://%s", net.JoinHostPort(c.advertise, fmt.Sprint(c.apiPort)))
	if err := pki.WriteKubeconfig(c.kubeconfig, server, "berth", "admin", ca.CertPEM(), certPEM, keyPEM, ""); err != nil {
		return fmt.Errorf("kubeconfig: %w", err)
	}
	if err := startControlPlane(ctx, log, ca, c); err != nil {
		return fmt.Errorf("control plane: %w", err)
	}
	log.Info("Kubernetes API ready", "url", server, "kubeconfig", c.kubeconfig, "etcd", etcdReady.Round(time.Millisecond), "took", time.Since(start).Round(time.Millisecond))
	fmt.Fprintf(os.Stderr, "berth server: API at %s; export KUBECONFIG=%s\n", server, c.kubeconfig)
	fmt.Fprintf(os.Stderr, "berth server: join nodes with: berth agent --server %s --token-file %s\n", server, filepath.Join(c.dataDir, "node-token"))
	_ = joinToken

	agentDone := make(chan error, 1)
	if c.disableAgent {
		agentDone <- nil
	} else {
		n := c.node
		n.dataDir, n.runDir, n.nodeName, n.clusterCIDR = filepath.Join(c.dataDir, "agent"), c.runDir, c.nodeName, c.clusterCIDR
		if n.nodeIP == "" && c.advertise != "127.0.0.1" {
			n.nodeIP = c.advertise
		}
		var ips []net.IP
		var names []string
		for _, a := range nodeAddresses(n) {
			if ip := net.ParseIP(a); ip != nil {
				ips = append(ips, ip)
			} else {
				names = append(names, a)
			}
		}
		creds, err := ca.IssueNode(n.nodeName, names, ips)
		if err != nil {
			return fmt.Errorf("node credentials: %w", err)
		}
		go func() {
			err := runNode(ctx, log, n, creds, fmt.Sprintf("https://127.0.0.1:%d", c.apiPort))
			if err != nil && ctx.Err() == nil {
				log.Error("node agent stopped", "err", err)
			}
			agentDone <- err
		}()
	}

	select {
	case <-ctx.Done():
	case err := <-errc:
		if !errors.Is(err, http.ErrServerClosed) {
			return err
		}
	}
	stop()
	<-agentDone // the kubelet and the engine first: they talk to the API
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	hs.Shutdown(sctx)
	return nil
}

// nodeToken returns the cluster's join token, kept at path (0600), making it on first
// start, and its secret part.
func nodeToken(path string, caPEM []byte) (token, secret string, err error) {
	if data, err := os.ReadFile(path); err == nil {
		token = strings.TrimSpace(string(data))
		_, secret, err := pki.ParseJoinToken(token)
		return token, secret, err
	} else if !errors.Is(err, fs.ErrNotExist) {
		return "", "", err
	}
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		return "", "", err
	}
	secret = hex.EncodeToString(b)
	token = pki.JoinToken(caPEM, secret)
	return token, secret, os.WriteFile(path, []byte(token+"\n"), 0o600)
}

// kubeletTransport is how the API server reaches kubelets: with a client certificate
// of its own, trusting kubelet serving certificates the cluster CA issued.
func kubeletTransport(ca *pki.CA, pkiDir string) (*http.Transport, error) {
	certPEM, keyPEM, err := ca.IssueClient(pkiDir, "apiserver-kubelet-client", "kube-apiserver-kubelet-client", []string{"system:masters"})
	if err != nil {
		return nil, fmt.Errorf("kubelet client certificate: %w", err)
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, err
	}
	return &http.Transport{
		TLSClientConfig:     &tls.Config{Certificates: []tls.Certificate{pair}, RootCAs: ca.Pool(), MinVersion: tls.VersionTLS12},
		TLSHandshakeTimeout: 10 * time.Second, IdleConnTimeout: 90 * time.Second, MaxIdleConnsPerHost: 16,
	}, nil
}
