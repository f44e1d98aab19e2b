package pki

import (
	"crypto/tls"
	"crypto/x509"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestJoinGivesNodeCredentialsFromTheClusterCA(t *testing.T) {
	ca, err := LoadOrCreateCA(t.TempDir(), "test-ca")
	if err != nil {
		t.Fatal(err)
	}
	serving, err := ca.IssueServing(t.TempDir(), "srv", []string{"localhost"}, []net.IP{net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(JoinHandler(ca, "s3cret", http.NotFoundHandler()))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{serving}}
	srv.StartTLS()
	defer srv.Close()
	token := JoinToken(ca.CertPEM(), "s3cret")

	creds, err := Join(t.Context(), srv.URL, token, "node2", []string{"10.0.0.2", "node2.lan"})
	if err != nil {
		t.Fatal(err)
	}
	pair, err := tls.X509KeyPair(creds.ClientCert, creds.ClientKey)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(pair.Certificate[0])
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: ca.Pool(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Fatalf("client certificate does not verify against the CA: %v", err)
	}
	if leaf.Subject.CommonName != "system:node:node2" || len(leaf.Subject.Organization) != 1 || leaf.Subject.Organization[0] != "system:nodes" {
		t.Fatalf("client certificate subject %v", leaf.Subject)
	}
	spair, err := tls.X509KeyPair(creds.ServingCert, creds.ServingKey)
	if err != nil {
		t.Fatal(err)
	}
	sleaf, _ := x509.ParseCertificate(spair.Certificate[0])
	if _, err := sleaf.Verify(x509.VerifyOptions{Roots: ca.Pool(), DNSName: "10.0.0.2"}); err != nil {
		t.Fatalf("serving certificate does not cover 10.0.0.2: %v", err)
	}

	if _, err := Join(t.Context(), srv.URL, JoinToken(ca.CertPEM(), "wrong"), "node2", nil); err == nil || !strings.Contains(err.Error(), "401") {
		t.Fatalf("a wrong secret: %v, want 401", err)
	}
	other, _ := LoadOrCreateCA(t.TempDir(), "other")
	if _, err := Join(t.Context(), srv.URL, JoinToken(other.CertPEM(), "s3cret"), "node2", nil); err == nil || !strings.Contains(err.Error(), "does not match") {
		t.Fatalf("a token pinning another CA: %v", err)
	}
	if _, err := Join(t.Context(), srv.URL, token, "Bad_Name", nil); err == nil || !strings.Contains(err.Error(), "400") {
		t.Fatalf("an invalid node name: %v", err)
	}
	if _, _, err := ParseJoinToken("B10abc::x"); err == nil {
		t.Fatal("a malformed token was accepted")
	}
}
