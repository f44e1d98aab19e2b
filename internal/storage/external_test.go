package storage

import (
	"bytes"
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/berth-project/berth/internal/pki"
)

// externalTLS are the files an external etcd serves TLS with and requires of clients.
type externalTLS struct{ ca, cert, key string }

// startExternalEtcd runs Debian's etcd-server (/usr/bin/etcd) on random loopback ports
// with its data in a temporary directory, as `berth server --etcd-endpoints` would find
// a cluster, and stops it when the test ends.
func startExternalEtcd(t *testing.T, tls *externalTLS) []string {
	t.Helper()
	bin, err := exec.LookPath("etcd")
	if err != nil {
		t.Skip("etcd-server is not installed (apt-get install etcd-server): skipping the external etcd test")
	}
	// A port picked free can be taken by another test's process before etcd binds it
	// (packages are tested in parallel); etcd then exits at once, and another pair is tried.
	for try := 1; ; try++ {
		eps, stderr, busy := tryExternalEtcd(t, bin, tls)
		if !busy {
			return eps
		}
		if try == 3 {
			t.Fatalf("etcd found its ports taken %d times; its last log:\n%s", try, stderr)
		}
	}
}

// tryExternalEtcd starts etcd on two ports found free and waits until it accepts
// connections. busy reports that it exited because a port was taken meanwhile.
func tryExternalEtcd(t *testing.T, bin string, tls *externalTLS) (eps []string, log string, busy bool) {
	t.Helper()
	scheme := "http"
	if tls != nil {
		scheme = "https"
	}
	client := fmt.Sprintf("%s://127.0.0.1:%d", scheme, freePort(t))
	peer := fmt.Sprintf("http://127.0.0.1:%d", freePort(t))
	args := []string{
		"--name", "default", "--data-dir", filepath.Join(t.TempDir(), "etcd"),
		"--listen-client-urls", client, "--advertise-client-urls", client,
		"--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
		"--initial-cluster", "default=" + peer,
		"--heartbeat-interval", "10", "--election-timeout", "100",
		"--logger", "zap", "--log-outputs", "stderr", "--log-level", "error",
	}
	if tls != nil {
		args = append(args, "--cert-file", tls.cert, "--key-file", tls.key, "--trusted-ca-file", tls.ca, "--client-cert-auth")
	}
	// Read only once the process has exited (Wait has returned): no lock is needed.
	var stderr bytes.Buffer
	cmd := exec.Command(bin, args...)
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", bin, err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	stop := func() { cmd.Process.Kill(); <-exited }
	// Ready when it accepts connections; the Store's constructor checks it answers.
	addr := client[len(scheme)+3:]
	for deadline := time.Now().Add(10 * time.Second); ; {
		if c, err := net.DialTimeout("tcp", addr, 100*time.Millisecond); err == nil {
			c.Close()
			break
		}
		select {
		case <-exited:
			if out := stderr.String(); strings.Contains(out, "address already in use") {
				return nil, out, true
			}
			t.Fatalf("etcd exited before it listened on %s; its log:\n%s", addr, stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			stop()
			t.Fatalf("etcd did not listen on %s within 10s; its log:\n%s", addr, stderr.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Cleanup(func() {
		stop()
		if t.Failed() {
			t.Logf("etcd's log:\n%s", stderr.String())
		}
	})
	return []string{client}, "", false
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// TestExternalEtcdStore runs the Store suite against Debian's etcd binary, a separate
// process of another etcd version: NewEtcd works with an etcd it did not start.
func TestExternalEtcdStore(t *testing.T) {
	startExternalEtcd(t, nil) // skips the suite at once when etcd is missing
	testStore(t, func(t *testing.T) harness {
		eps := startExternalEtcd(t, nil)
		return harness{store: newStore(t, EtcdConfig{Endpoints: eps, DialTimeout: 10 * time.Second}), endpoints: eps}
	})
}

// TestExternalEtcdOverTLS: with an etcd that requires client certificates, NewEtcd
// connects with TLSFromFiles and fails without a client certificate.
func TestExternalEtcdOverTLS(t *testing.T) {
	dir := t.TempDir()
	ca, err := pki.LoadOrCreateCA(dir, "etcd-ca")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ca.IssueServing(dir, "etcd", []string{"localhost"}, []net.IP{net.ParseIP("127.0.0.1")}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := ca.IssueClient(dir, "apiserver", "apiserver", nil); err != nil {
		t.Fatal(err)
	}
	file := func(name string) string { return filepath.Join(dir, name) }
	eps := startExternalEtcd(t, &externalTLS{ca: file("ca.crt"), cert: file("etcd.crt"), key: file("etcd.key")})

	tc, err := TLSFromFiles(file("ca.crt"), file("apiserver.crt"), file("apiserver.key"))
	if err != nil {
		t.Fatal(err)
	}
	s := newStore(t, EtcdConfig{Endpoints: eps, TLS: tc, DialTimeout: 10 * time.Second})
	rev := mustCreate(t, s, "/registry/namespaces/default", "ns")
	if kv, err := s.Get(ctxT(t), "/registry/namespaces/default"); err != nil || kv.ModRevision != rev {
		t.Fatalf("get over TLS: %+v, %v", kv, err)
	}

	noCert, _ := TLSFromFiles(file("ca.crt"), "", "")
	if s, err := NewEtcd(EtcdConfig{Endpoints: eps, TLS: noCert, DialTimeout: time.Second}); err == nil {
		s.Close()
		t.Fatal("connected without a client certificate")
	}
}

// TestExternalEtcdCacher runs the Store suite through the watch cache over Debian's etcd,
// whose progress notifications the cache relies on for fresh lists.
func TestExternalEtcdCacher(t *testing.T) {
	startExternalEtcd(t, nil)
	testStore(t, func(t *testing.T) harness {
		eps := startExternalEtcd(t, nil)
		c := NewCacherWithOptions(newStore(t, EtcdConfig{Endpoints: eps, DialTimeout: 10 * time.Second}), "/", CacherOptions{Window: 5})
		t.Cleanup(func() { c.Close() })
		return harness{store: c, endpoints: eps}
	})
}

// TestProgressReliable: progress notifications are trusted from the etcd versions that
// send them in order with events, as kube-apiserver does.
func TestProgressReliable(t *testing.T) {
	for v, want := range map[string]bool{
		"3.4.23": false, "3.4.31": true, "3.5.12": false, "3.5.13": true,
		"3.6.0": true, "3.7.3": true, "4.0.0": true, "2.3.8": false, "": false, "garbage": false,
	} {
		if got := progressReliable(v); got != want {
			t.Errorf("progressReliable(%q) = %v, want %v", v, got, want)
		}
	}
}
