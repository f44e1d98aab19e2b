// Package kubelet tests Berth's kubelet end to end: a real `berth server` for the API, Debian's
// containerd 1.6 with its CRI plugin for the containers, and the kubelet in-process between them.
package kubelet

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/berth-project/berth/internal/kubelet"
	"github.com/berth-project/berth/internal/pki"
	"github.com/berth-project/berth/test/e2e/internal/berthserver"
)

const nodeName = "tkl-node"

var (
	setupErr   error
	kubeconfig string
	cs         *kubernetes.Clientset
	ctrd       *containerd
	testDir    string
	ca         *pki.CA
	servePort  int

	kmu        sync.Mutex
	kubeletCfg kubelet.Config
	stopKL     func() // stops the running kubelet and waits for it
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	if os.Geteuid() != 0 {
		setupErr = fmt.Errorf("the kubelet tests run as root")
		return m.Run()
	}
	dir, err := os.MkdirTemp("", "tkl")
	if err != nil {
		setupErr = err
		return m.Run()
	}
	testDir = dir
	defer func() {
		// Memory-backed emptyDirs of pods the kubelet had no time to remove.
		for _, m := range mountsUnder(dir) {
			unix.Unmount(m, unix.MNT_DETACH)
		}
		if os.Getenv("TKL_KEEP") == "" {
			os.RemoveAll(dir)
		} else {
			fmt.Fprintln(os.Stderr, "keeping", dir)
		}
	}()
	stopServer, err := startServer(dir)
	if err != nil {
		setupErr = err
		return m.Run()
	}
	defer stopServer()
	images, err := buildImages(dir)
	if err != nil {
		setupErr = err
		return m.Run()
	}
	ctrd, err = startContainerd(filepath.Join(dir, "containerd"))
	if err != nil {
		setupErr = err
		return m.Run()
	}
	defer ctrd.stop()
	for _, im := range images {
		if out, err := ctrd.ctr("images", "import", im); err != nil {
			setupErr = fmt.Errorf("ctr images import %s: %v\n%s", im, err, out)
			return m.Run()
		}
	}
	if err := startKubelet(dir); err != nil {
		setupErr = err
		return m.Run()
	}
	defer func() {
		kmu.Lock()
		defer kmu.Unlock()
		if stopKL != nil {
			stopKL()
		}
	}()
	code := m.Run()
	if code != 0 {
		if b, err := os.ReadFile(filepath.Join(dir, "kubelet.log")); err == nil && os.Getenv("TKL_LOG") != "" {
			os.Stderr.Write(b)
		}
	}
	return code
}

func startServer(dir string) (func(), error) {
	srv, err := berthserver.Start(dir, "--disable-agent")
	if err != nil {
		return nil, err
	}
	stop := func() { srv.Stop(10 * time.Second) }
	kubeconfig = srv.Kubeconfig
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		stop()
		return nil, err
	}
	cfg.QPS, cfg.Burst = 1000, 1000
	if cs, err = kubernetes.NewForConfig(cfg); err != nil {
		stop()
		return nil, err
	}
	return stop, nil
}

// startKubelet runs the kubelet in-process against the server and containerd; a restart test
// stops it and starts another with the same configuration.
func startKubelet(dir string) error {
	var err error
	// The cluster's CA, as `berth agent` gets it: the kubelet talks to the API as
	// system:node:NAME, and the API server reaches the kubelet for logs and exec.
	if ca, err = pki.LoadOrCreateCA(filepath.Join(dir, "data", "pki"), "berth-ca"); err != nil {
		return err
	}
	creds, err := ca.IssueNode(nodeName, []string{"localhost"}, []net.IP{net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return err
	}
	cert, err := tls.X509KeyPair(creds.ServingCert, creds.ServingKey)
	if err != nil {
		return err
	}
	restCfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return err
	}
	nodeCfg := rest.AnonymousClientConfig(restCfg)
	nodeCfg.CertData, nodeCfg.KeyData = creds.ClientCert, creds.ClientKey
	nodeCfg.QPS, nodeCfg.Burst = 200, 400
	nodeClient, err := kubernetes.NewForConfig(nodeCfg)
	if err != nil {
		return err
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	servePort = l.Addr().(*net.TCPAddr).Port
	l.Close()
	logf, err := os.OpenFile(filepath.Join(dir, "kubelet.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	kubeletCfg = kubelet.Config{
		Client:          nodeClient,
		NodeName:        nodeName,
		NodeIP:          net.IPv4(127, 0, 0, 1),
		RuntimeEndpoint: ctrd.sock,
		RootDir:         filepath.Join(dir, "kubelet"),
		ServingAddr:     fmt.Sprintf("127.0.0.1:%d", servePort),
		ServingCert:     cert,
		ClientCA:        ca.Pool(),
		ClusterDNS:      []string{"10.43.0.10"},
		NodeLabels:      map[string]string{"berth.test/kubelet": "yes"},
		// Small, so that TestContainerLogsAreRotated sees a rotation.
		ContainerLogMaxSize:  256 << 10,
		ContainerLogMaxFiles: 3,
		Log:                  slog.New(slog.NewTextHandler(logf, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	return runKubelet()
}

func runKubelet() error {
	k, err := kubelet.New(kubeletCfg)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- k.Run(ctx) }()
	stopKL = func() {
		cancel()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
		}
	}
	return nil
}

// restartKubelet stops the kubelet and starts a new one, as a crash and restart would.
func restartKubelet(t *testing.T) {
	t.Helper()
	kmu.Lock()
	defer kmu.Unlock()
	stopKL()
	if err := runKubelet(); err != nil {
		t.Fatal(err)
	}
}

func need(t *testing.T) {
	t.Helper()
	if setupErr != nil {
		t.Fatal(setupErr)
	}
}

// clientTLS is a client certificate from the test CA, as the API server presents.
func clientTLS(t *testing.T) *tls.Config {
	t.Helper()
	certPEM, keyPEM, err := ca.IssueClient(filepath.Join(testDir, "pki"), "apiserver-kubelet-client", "kube-apiserver-kubelet-client", nil)
	if err != nil {
		t.Fatal(err)
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Config{Certificates: []tls.Certificate{pair}, RootCAs: ca.Pool()}
}
