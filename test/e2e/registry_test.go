package e2e

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// testRegistry is a `berth registry` process with TLS and htpasswd auth, its CA trusted
// by the engine the Docker way (DATA/certs.d/HOST:PORT/ca.crt).
type testRegistry struct {
	addr, dir, certFile, keyFile, htpasswd, logPath string
	user, pass                                      string
	cmd                                             *exec.Cmd
}

// selfSigned writes a certificate for 127.0.0.1 and its key.
func selfSigned(t *testing.T, dir string) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalECPrivateKey(key)
	certFile, keyFile = filepath.Join(dir, "reg.crt"), filepath.Join(dir, "reg.key")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600)
	return certFile, keyFile
}

func newTestRegistry(t *testing.T, e *engine) *testRegistry {
	t.Helper()
	dir := t.TempDir()
	r := &testRegistry{
		addr: fmt.Sprintf("127.0.0.1:%d", freePort(t)), dir: filepath.Join(dir, "data"),
		user: "walker", pass: "s3cret-" + randHex(6), logPath: filepath.Join(dir, "registry.log"),
	}
	r.certFile, r.keyFile = selfSigned(t, dir)
	hash, err := bcrypt.GenerateFromPassword([]byte(r.pass), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	r.htpasswd = filepath.Join(dir, "htpasswd")
	os.WriteFile(r.htpasswd, []byte(r.user+":"+string(hash)+"\n"), 0o600)
	certs := filepath.Join(e.dataDir, "certs.d", r.addr)
	if err := os.MkdirAll(certs, 0o755); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(r.certFile)
	os.WriteFile(filepath.Join(certs, "ca.crt"), data, 0o644)
	t.Cleanup(func() {
		r.kill()
		os.RemoveAll(certs)
		e.docker(t, "logout", r.addr)
		if t.Failed() {
			log, _ := os.ReadFile(r.logPath)
			t.Logf("registry log:\n%s", clip(string(log)))
		}
	})
	r.start(t)
	return r
}

func (r *testRegistry) start(t *testing.T) {
	t.Helper()
	logf, err := os.OpenFile(r.logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	r.cmd = exec.Command(berthBin(), "registry", "--addr", r.addr, "--data-dir", r.dir,
		"--tls-cert", r.certFile, "--tls-key", r.keyFile, "--htpasswd", r.htpasswd)
	r.cmd.Stdout, r.cmd.Stderr = logf, logf
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := r.client()
	eventually(t, 20*time.Second, "the registry answers /v2/", func() (bool, string) {
		resp, err := c.Get("https://" + r.addr + "/v2/")
		if err != nil {
			return false, err.Error()
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusUnauthorized, resp.Status
	})
}

func (r *testRegistry) kill() {
	if r.cmd != nil && r.cmd.Process != nil {
		r.cmd.Process.Signal(syscall.SIGKILL)
		r.cmd.Wait()
		r.cmd = nil
	}
}

// client is an HTTPS client that trusts the registry's certificate.
func (r *testRegistry) client() *http.Client {
	pool := x509.NewCertPool()
	data, _ := os.ReadFile(r.certFile)
	pool.AppendCertsFromPEM(data)
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
}

// get does an authenticated GET and returns status and body.
func (r *testRegistry) get(t *testing.T, path string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, "https://"+r.addr+path, nil)
	req.SetBasicAuth(r.user, r.pass)
	resp, err := r.client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func (r *testRegistry) login(t *testing.T, e *engine) {
	t.Helper()
	res := e.dockerIn(t, strings.NewReader(r.pass), "login", "-u", r.user, "--password-stdin", r.addr)
	if res.Code != 0 {
		t.Fatalf("docker login: %s", res)
	}
}

// TestRegistryRoundTrip: the seed's private registry, through the real docker CLI: TLS
// trusted through certs.d, htpasswd auth, push, catalog, search, pull by tag and digest,
// re-push skipping layers, logout.
func TestRegistryRoundTrip(t *testing.T) {
	e := needEngine(t)
	reg := newTestRegistry(t, e)
	src := uniq("rt") + ":1.0"
	e.newImage(t, src)
	ref := reg.addr + "/" + src
	e.ok(t, "tag", src, ref)
	e.rmiOnCleanup(t, ref)

	if r := e.docker(t, "push", ref); r.Code == 0 {
		t.Fatalf("push without login succeeded: %s", r)
	}
	if r := e.dockerIn(t, strings.NewReader("wrong"), "login", "-u", reg.user, "--password-stdin", reg.addr); r.Code == 0 {
		t.Fatalf("login with a wrong password succeeded: %s", r)
	}
	reg.login(t, e)
	out := e.ok(t, "push", ref)
	mustContain(t, "push output", out, "The push refers to repository ["+reg.addr+"/")
	mustContain(t, "push output", out, "Pushed")
	mustContain(t, "push output", out, "1.0: digest: sha256:")

	code, body := reg.get(t, "/v2/_catalog")
	mustEqual(t, "catalog status", fmt.Sprint(code), "200")
	repo := strings.TrimSuffix(src, ":1.0")
	mustContain(t, "catalog", body, `"`+repo+`"`)
	mustContain(t, "docker search", e.ok(t, "search", reg.addr+"/"+repo), reg.addr+"/"+repo)

	id := e.inspect(t, "{{.Id}}", ref)
	e.ok(t, "rmi", ref)
	pull := e.ok(t, "pull", ref)
	mustContain(t, "pull output", pull, "Status: ")
	mustEqual(t, "pulled image id", e.inspect(t, "{{.Id}}", ref), id)
	mustContain(t, "the pulled image runs", e.ok(t, "run", "--rm", ref, "cat", "/www/index.html"), "hello from busybox")
	dig := e.inspect(t, "{{index .RepoDigests 0}}", ref)
	if !strings.HasPrefix(dig, reg.addr+"/"+repo+"@sha256:") {
		t.Fatalf("RepoDigests[0] = %q", dig)
	}
	e.ok(t, "pull", dig)

	again := e.ok(t, "push", ref)
	mustContain(t, "re-push", again, "Layer already exists")
	mustNotContain(t, "re-push", again, "Pushed")
	e.ok(t, "logout", reg.addr)
	if r := e.docker(t, "pull", ref+"-missing"); r.Code == 0 {
		t.Fatalf("pull after logout succeeded: %s", r)
	}
}

// TestRegistryFreshPull: an image the engine never had comes down whole (every layer
// downloaded and unpacked), runs, and its files are intact.
func TestRegistryFreshPull(t *testing.T) {
	e := needBuilder(t)
	reg := newTestRegistry(t, e)
	reg.login(t, e)
	ctx := t.TempDir()
	payload := make([]byte, 3<<20)
	rand.Read(payload)
	os.WriteFile(filepath.Join(ctx, "payload"), payload, 0o644)
	os.WriteFile(filepath.Join(ctx, "Dockerfile"), []byte("FROM "+bbImage+"\nCOPY payload /payload\nRUN echo "+randHex(8)+" > /stamp\n"), 0o644)
	ref := reg.addr + "/" + uniq("fresh") + ":1"
	e.rmiOnCleanup(t, ref)
	r := e.docker(t, "build", "-t", ref, ctx)
	if r.Code != 0 {
		t.Fatalf("build: %s", r)
	}
	e.ok(t, "push", ref)
	// Forget the image and its build steps, so its layers are gone from the engine.
	e.ok(t, "rmi", ref)
	e.docker(t, "builder", "prune", "-af")
	out := e.ok(t, "pull", ref)
	mustContain(t, "a fresh pull downloads", out, "Pull complete")
	sum := sha256.Sum256(payload)
	mustEqual(t, "the payload's checksum in the pulled image", e.ok(t, "run", "--rm", ref, "sha256sum", "/payload"), hex.EncodeToString(sum[:])+"  /payload")
}

// TestRegistryCrane: go-containerregistry's crane, a second real client, reads what docker
// pushed (same digest) and pushes an image that docker then pulls and runs.
func TestRegistryCrane(t *testing.T) {
	e := needEngine(t)
	crane := buildCrane(t)
	reg := newTestRegistry(t, e)
	reg.login(t, e)
	src := uniq("cr") + ":1"
	e.newImage(t, src)
	ref := reg.addr + "/" + src
	e.ok(t, "tag", src, ref)
	e.rmiOnCleanup(t, ref)
	e.ok(t, "push", ref)
	dig := e.inspect(t, "{{index .RepoDigests 0}}", ref)

	home := t.TempDir()
	env := append(os.Environ(), "HOME="+home, "DOCKER_CONFIG="+home, "SSL_CERT_FILE="+reg.certFile)
	run := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(crane, args...)
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("crane %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return strings.TrimSpace(string(out))
	}
	run("auth", "login", reg.addr, "-u", reg.user, "-p", reg.pass)
	mustEqual(t, "crane digest of what docker pushed", run("digest", ref), strings.SplitN(dig, "@", 2)[1])
	mustContain(t, "crane ls", run("ls", reg.addr+"/"+strings.TrimSuffix(src, ":1")), "1")

	// crane makes a new tag with an extra layer; docker pulls and runs it.
	layer := filepath.Join(t.TempDir(), "layer.tar.gz")
	os.WriteFile(layer, tarGz(t, map[string]string{"etc/crane-was-here": "yes\n"}), 0o644)
	out := ref + "-crane"
	e.rmiOnCleanup(t, out)
	run("append", "-b", ref, "-f", layer, "-t", out)
	e.ok(t, "pull", out)
	mustEqual(t, "docker runs crane's image", e.ok(t, "run", "--rm", out, "cat", "/etc/crane-was-here"), "yes")
}

var craneOnce struct {
	sync.Once
	path string
	err  error
}

// buildCrane builds go-containerregistry's crane from the module this repository uses.
func buildCrane(t *testing.T) string {
	t.Helper()
	craneOnce.Do(func() {
		dir, err := os.MkdirTemp("", "crane")
		if err != nil {
			craneOnce.err = err
			return
		}
		craneOnce.path = filepath.Join(dir, "crane")
		cmd := exec.Command("go", "build", "-o", craneOnce.path, "github.com/google/go-containerregistry/cmd/crane")
		cmd.Dir = repoRoot()
		if out, err := cmd.CombinedOutput(); err != nil {
			craneOnce.err = fmt.Errorf("%v: %s", err, out)
		}
	})
	if craneOnce.err != nil {
		t.Fatalf("building crane: %v", craneOnce.err)
	}
	return craneOnce.path
}

// TestRegistryKilledMidPush: the registry is SIGKILLed while a large layer uploads. After a
// restart it serves no partial blob, and the retried push succeeds and pulls back intact.
func TestRegistryKilledMidPush(t *testing.T) {
	e := needBuilder(t)
	reg := newTestRegistry(t, e)
	reg.login(t, e)
	ctx := t.TempDir()
	payload := make([]byte, 96<<20)
	rand.Read(payload)
	os.WriteFile(filepath.Join(ctx, "payload"), payload, 0o644)
	os.WriteFile(filepath.Join(ctx, "Dockerfile"), []byte("FROM "+bbImage+"\nCOPY payload /payload\n"), 0o644)
	ref := reg.addr + "/" + uniq("kill") + ":1"
	e.rmiOnCleanup(t, ref)
	if r := e.docker(t, "build", "-t", ref, ctx); r.Code != 0 {
		t.Fatalf("build: %s", r)
	}

	pushCtx, cancel := context.WithCancel(t.Context())
	defer cancel()
	done := make(chan result, 1)
	go func() { done <- e.dockerCtx(pushCtx, 60*time.Second, nil, "push", ref) }()
	// Kill the registry once part of the upload has landed on its disk.
	eventually(t, 30*time.Second, "part of the layer reaches the registry", func() (bool, string) {
		var biggest int64
		filepath.Walk(reg.dir, func(p string, fi os.FileInfo, err error) error {
			if err == nil && fi.Mode().IsRegular() && fi.Size() > biggest {
				biggest = fi.Size()
			}
			return nil
		})
		return biggest > 8<<20 && biggest < int64(len(payload)), fmt.Sprintf("largest file %d bytes", biggest)
	})
	reg.kill()
	if r := <-done; r.Code == 0 {
		t.Fatalf("the push succeeded although the registry was killed during it: %s", r)
	}
	reg.start(t)

	// No blob in the registry's store may differ from its digest.
	blobs := 0
	filepath.Walk(filepath.Join(reg.dir, "blobs"), func(p string, fi os.FileInfo, err error) error {
		if err != nil || !fi.Mode().IsRegular() {
			return nil
		}
		blobs++
		data, _ := os.ReadFile(p)
		sum := sha256.Sum256(data)
		if hex.EncodeToString(sum[:]) != filepath.Base(p) {
			t.Errorf("blob %s does not match its digest (a partial upload is served)", p)
		}
		return nil
	})
	t.Logf("%d complete blobs after the kill", blobs)

	e.ok(t, "push", ref)
	e.ok(t, "rmi", ref)
	e.docker(t, "builder", "prune", "-af")
	e.ok(t, "pull", ref)
	sum := sha256.Sum256(payload)
	mustEqual(t, "payload after the retried push", e.ok(t, "run", "--rm", ref, "sha256sum", "/payload"), hex.EncodeToString(sum[:])+"  /payload")
}

// TestRegistryPullGNUTarLayer: a layer made by GNU tar (padded to a 10 KiB record after its
// end-of-archive blocks, as `tar -c | docker import` gives) pulls into an engine that has
// none of it.
func TestRegistryPullGNUTarLayer(t *testing.T) {
	e := needEngine(t)
	reg := newTestRegistry(t, e)
	reg.login(t, e)
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "bin"), 0o755)
	data, err := os.ReadFile(busyboxPath)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(root, "bin", "busybox"), data, 0o755)
	os.WriteFile(filepath.Join(root, "marker"), []byte(randHex(16)+"\n"), 0o644)
	tarball := filepath.Join(t.TempDir(), "rootfs.tar")
	if out, err := exec.Command("tar", "-C", root, "-cf", tarball, ".").CombinedOutput(); err != nil {
		t.Fatalf("tar: %v %s", err, out)
	}
	f, _ := os.Open(tarball)
	defer f.Close()
	ref := reg.addr + "/" + uniq("gnutar") + ":1"
	e.rmiOnCleanup(t, ref)
	if r := e.dockerIn(t, f, "import", "-", ref); r.Code != 0 {
		t.Fatalf("import: %s", r)
	}
	e.ok(t, "push", ref)
	e.ok(t, "rmi", ref)
	mustContain(t, "pull", e.ok(t, "pull", ref), "Pull complete")
	want, _ := os.ReadFile(filepath.Join(root, "marker"))
	mustEqual(t, "the pulled file", e.ok(t, "run", "--rm", ref, "/bin/busybox", "cat", "/marker"), strings.TrimSpace(string(want)))
}
