package pki

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

func newCA(t *testing.T) (*CA, string) {
	t.Helper()
	dir := t.TempDir()
	ca, err := LoadOrCreateCA(dir, "berth-ca")
	if err != nil {
		t.Fatal(err)
	}
	return ca, dir
}

func mode(t *testing.T, path string) os.FileMode {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode().Perm()
}

// TestMutualTLSWithIssuedCertificates: a server with an IssueServing certificate and a
// client with an IssueClient one complete a handshake in which each verifies the other
// against the CA, and the server sees the client's user (CN) and groups (O).
func TestMutualTLSWithIssuedCertificates(t *testing.T) {
	ca, dir := newCA(t)
	serving, err := ca.IssueServing(dir, "apiserver", []string{"localhost", "kubernetes.default.svc"}, []net.IP{net.ParseIP("127.0.0.1")})
	if err != nil {
		t.Fatal(err)
	}
	certPEM, keyPEM, err := ca.IssueClient(dir, "admin", "admin", []string{"system:masters", "ops"})
	if err != nil {
		t.Fatal(err)
	}
	client, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}

	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{
		Certificates: []tls.Certificate{serving},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    ca.Pool(),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	seen := make(chan string, 2)
	go func() {
		for range 2 {
			conn, err := ln.Accept()
			if err != nil {
				seen <- err.Error()
				return
			}
			tc := conn.(*tls.Conn)
			if err := tc.Handshake(); err != nil {
				seen <- err.Error()
			} else {
				peer := tc.ConnectionState().PeerCertificates[0]
				seen <- peer.Subject.CommonName + " " + strings.Join(peer.Subject.Organization, ",")
			}
			conn.Close()
		}
	}()

	for _, serverName := range []string{"", "localhost"} { // by IP SAN, then by DNS SAN
		conn, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{RootCAs: ca.Pool(), Certificates: []tls.Certificate{client}, ServerName: serverName})
		if err != nil {
			t.Fatalf("handshake (server name %q): %v", serverName, err)
		}
		conn.Close()
		// x509 keeps the O values of one name sorted.
		if got := <-seen; got != "admin ops,system:masters" {
			t.Fatalf("server saw %q, want user admin in groups ops and system:masters", got)
		}
	}
}

// TestCertificatesHaveTheirUsages: a serving certificate is not a client certificate and
// the other way round; names and lifetimes are as documented.
func TestCertificatesHaveTheirUsages(t *testing.T) {
	ca, dir := newCA(t)
	serving, err := ca.IssueServing(dir, "apiserver", []string{"localhost"}, []net.IP{net.ParseIP("10.43.0.1")})
	if err != nil {
		t.Fatal(err)
	}
	leaf := serving.Leaf
	if leaf == nil {
		if leaf, err = x509.ParseCertificate(serving.Certificate[0]); err != nil {
			t.Fatal(err)
		}
	}
	verify := func(c *x509.Certificate, u x509.ExtKeyUsage) error {
		_, err := c.Verify(x509.VerifyOptions{Roots: ca.Pool(), KeyUsages: []x509.ExtKeyUsage{u}})
		return err
	}
	if err := verify(leaf, x509.ExtKeyUsageServerAuth); err != nil {
		t.Fatalf("serving cert for server auth: %v", err)
	}
	if verify(leaf, x509.ExtKeyUsageClientAuth) == nil {
		t.Fatal("serving cert verifies for client auth")
	}
	if err := leaf.VerifyHostname("10.43.0.1"); err != nil {
		t.Fatal(err)
	}
	if d := time.Until(leaf.NotAfter); d < 364*24*time.Hour || d > 366*24*time.Hour {
		t.Fatalf("leaf valid for %v, want a year", d)
	}
	if _, ok := leaf.PublicKey.(*ecdsa.PublicKey); !ok {
		t.Fatalf("leaf key %T, want ECDSA", leaf.PublicKey)
	}

	certPEM, _, err := ca.IssueClient(dir, "kubelet", "system:node:n1", []string{"system:nodes"})
	if err != nil {
		t.Fatal(err)
	}
	client := parseCert(t, certPEM)
	if err := verify(client, x509.ExtKeyUsageClientAuth); err != nil {
		t.Fatalf("client cert for client auth: %v", err)
	}
	if verify(client, x509.ExtKeyUsageServerAuth) == nil {
		t.Fatal("client cert verifies for server auth")
	}

	caCert := parseCert(t, ca.CertPEM())
	if !caCert.IsCA || time.Until(caCert.NotAfter) < 9*365*24*time.Hour {
		t.Fatalf("CA: IsCA %v, valid until %v", caCert.IsCA, caCert.NotAfter)
	}
	for _, f := range []string{"ca.key", "apiserver.key", "kubelet.key"} {
		if m := mode(t, filepath.Join(dir, f)); m != 0o600 {
			t.Errorf("%s has mode %v, want 0600", f, m)
		}
	}
}

func parseCert(t *testing.T, certPEM []byte) *x509.Certificate {
	t.Helper()
	block, _ := pem.Decode(certPEM)
	if block == nil {
		t.Fatalf("no PEM in %q", certPEM)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

// TestReloadKeepsCertificates: a second start finds the same CA and the same leaf
// certificates; a leaf missing a name, with other groups, or near expiry is issued anew.
func TestReloadKeepsCertificates(t *testing.T) {
	ca, dir := newCA(t)
	again, err := LoadOrCreateCA(dir, "ignored")
	if err != nil || !bytes.Equal(again.CertPEM(), ca.CertPEM()) {
		t.Fatalf("reloaded CA differs: %v", err)
	}
	names, ips := []string{"localhost"}, []net.IP{net.ParseIP("127.0.0.1")}
	first, _ := ca.IssueServing(dir, "apiserver", names, ips)
	second, err := again.IssueServing(dir, "apiserver", names, ips)
	if err != nil || !bytes.Equal(first.Certificate[0], second.Certificate[0]) {
		t.Fatalf("serving cert was not reused: %v", err)
	}
	more, _ := ca.IssueServing(dir, "apiserver", append(names, "berth.example"), ips)
	if bytes.Equal(more.Certificate[0], first.Certificate[0]) {
		t.Fatal("serving cert lacking a new name was reused")
	}
	fewer, _ := ca.IssueServing(dir, "apiserver", names, nil)
	if !bytes.Equal(fewer.Certificate[0], more.Certificate[0]) {
		t.Fatal("a cert covering every asked name was replaced")
	}

	c1, k1, _ := ca.IssueClient(dir, "admin", "admin", []string{"system:masters", "ops"})
	c2, k2, _ := again.IssueClient(dir, "admin", "admin", []string{"system:masters", "ops"})
	if !bytes.Equal(c1, c2) || !bytes.Equal(k1, k2) {
		t.Fatal("client cert was not reused")
	}
	if c3, _, _ := ca.IssueClient(dir, "admin", "admin", []string{"other"}); bytes.Equal(c3, c1) {
		t.Fatal("client cert with other groups was reused")
	}

	// A certificate a month from expiry is replaced by a year-long one.
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(7),
		Subject:      pkix.Name{CommonName: "localhost"},
		DNSNames:     names,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(30 * 24 * time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	certPEM, keyPEM, _ := encodePair(der, key)
	os.WriteFile(filepath.Join(dir, "expiring.crt"), certPEM, 0o644)
	os.WriteFile(filepath.Join(dir, "expiring.key"), keyPEM, 0o600)
	renewed, err := ca.IssueServing(dir, "expiring", names, nil)
	if err != nil {
		t.Fatal(err)
	}
	if leaf, _ := x509.ParseCertificate(renewed.Certificate[0]); time.Until(leaf.NotAfter) < 300*24*time.Hour {
		t.Fatalf("near-expiry cert kept: valid until %v", leaf.NotAfter)
	}
}

// TestCAWithoutKeyIsAnError: a CA certificate whose key is missing is not replaced.
func TestCAWithoutKeyIsAnError(t *testing.T) {
	_, dir := newCA(t)
	os.Remove(filepath.Join(dir, "ca.key"))
	if _, err := LoadOrCreateCA(dir, "berth-ca"); err == nil {
		t.Fatal("a CA without its key loaded")
	}
	os.WriteFile(filepath.Join(dir, "ca.key"), []byte("garbage"), 0o600)
	if _, err := LoadOrCreateCA(dir, "berth-ca"); !errors.Is(err, ErrInvalid) {
		t.Fatalf("err = %v, want ErrInvalid", err)
	}
}

// TestKubeconfigWorksWithClientGo: the kubeconfig is 0600, parses with clientcmd, and its
// credentials get client-go through a TLS server that requires a client certificate.
func TestKubeconfigWorksWithClientGo(t *testing.T) {
	ca, dir := newCA(t)
	serving, _ := ca.IssueServing(dir, "apiserver", []string{"localhost"}, []net.IP{net.ParseIP("127.0.0.1")})
	certPEM, keyPEM, _ := ca.IssueClient(dir, "admin", "admin", []string{"system:masters"})
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, r.TLS.PeerCertificates[0].Subject.CommonName)
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{serving}, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: ca.Pool()}
	srv.StartTLS()
	defer srv.Close()

	path := filepath.Join(dir, "sub", "admin.kubeconfig")
	if err := WriteKubeconfig(path, srv.URL, "berth", "admin", ca.CertPEM(), certPEM, keyPEM, ""); err != nil {
		t.Fatal(err)
	}
	if m := mode(t, path); m != 0o600 {
		t.Fatalf("kubeconfig mode %v, want 0600", m)
	}
	cfg, err := clientcmd.LoadFromFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.CurrentContext != "berth" || cfg.Clusters["berth"].Server != srv.URL || !bytes.Equal(cfg.Clusters["berth"].CertificateAuthorityData, ca.CertPEM()) || !bytes.Equal(cfg.AuthInfos["admin"].ClientKeyData, keyPEM) {
		t.Fatalf("kubeconfig read back wrong: %+v", cfg)
	}
	rc, err := clientcmd.NewDefaultClientConfig(*cfg, nil).ClientConfig()
	if err != nil {
		t.Fatal(err)
	}
	hc, err := rest.HTTPClientFor(rc)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := hc.Get(srv.URL)
	if err != nil {
		t.Fatalf("request with the kubeconfig's credentials: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "admin" {
		t.Fatalf("server saw %q, want admin", body)
	}

	tokPath := filepath.Join(dir, "node.kubeconfig")
	if err := WriteKubeconfig(tokPath, srv.URL, "berth", "node", ca.CertPEM(), nil, nil, "berth_secret"); err != nil {
		t.Fatal(err)
	}
	if cfg, err := clientcmd.LoadFromFile(tokPath); err != nil || cfg.AuthInfos["node"].Token != "berth_secret" {
		t.Fatalf("token kubeconfig: %+v, %v", cfg, err)
	}
	if m := mode(t, tokPath); m != 0o600 {
		t.Fatalf("kubeconfig mode %v, want 0600", m)
	}
}

// TestTokensRoundTripAndAreStoredHashed: a token maps back to its user and groups, also
// after reopening the file, which is 0600 and holds no token; unknown and revoked
// tokens are refused.
func TestTokensRoundTripAndAreStoredHashed(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tokens.json")
	toks, err := OpenTokens(path)
	if err != nil {
		t.Fatal(err)
	}
	node, err := toks.NewToken("system:node:n1", []string{"system:nodes"})
	if err != nil {
		t.Fatal(err)
	}
	user, _ := toks.NewToken("alice", nil)
	if node == user || !strings.HasPrefix(node, "berth_") || len(node) < 40 {
		t.Fatalf("tokens %q and %q", node, user)
	}
	if u, g, ok := toks.Lookup(node); !ok || u != "system:node:n1" || !slices.Equal(g, []string{"system:nodes"}) {
		t.Fatalf("lookup: %q %v %v", u, g, ok)
	}
	if _, _, ok := toks.Lookup(node + "x"); ok {
		t.Fatal("a wrong token was accepted")
	}
	if _, _, ok := toks.Lookup(""); ok {
		t.Fatal("the empty token was accepted")
	}

	data, _ := os.ReadFile(path)
	secret := strings.TrimPrefix(node, "berth_")
	if bytes.Contains(data, []byte(secret)) || bytes.Contains(data, []byte(strings.TrimPrefix(user, "berth_"))) {
		t.Fatalf("token file holds a token in plaintext: %s", data)
	}
	if m := mode(t, path); m != 0o600 {
		t.Fatalf("token file mode %v, want 0600", m)
	}

	reopened, err := OpenTokens(path)
	if err != nil {
		t.Fatal(err)
	}
	if u, _, ok := reopened.Lookup(user); !ok || u != "alice" {
		t.Fatalf("after reopening: %q %v", u, ok)
	}
	if err := reopened.Revoke("alice"); err != nil {
		t.Fatal(err)
	}
	if _, _, ok := reopened.Lookup(user); ok {
		t.Fatal("a revoked token was accepted")
	}
	if _, _, ok := reopened.Lookup(node); !ok {
		t.Fatal("revoking alice revoked the node's token")
	}
}
