package pki

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"time"
)

// IssueServing issues (or loads, if present and valid for these names and not near
// expiry) a serving cert for the DNS names and IPs, kept as NAME.crt/NAME.key in dir.
// A kept certificate that lacks one of the names is replaced, so adding a name (a new
// node address) takes effect on the next start.
func (ca *CA) IssueServing(dir, name string, dnsNames []string, ips []net.IP) (tls.Certificate, error) {
	want := func(c *x509.Certificate) bool {
		for _, n := range dnsNames {
			if !slices.Contains(c.DNSNames, n) {
				return false
			}
		}
		for _, ip := range ips {
			if !slices.ContainsFunc(c.IPAddresses, ip.Equal) {
				return false
			}
		}
		return true
	}
	cn := name
	if len(dnsNames) > 0 {
		cn = dnsNames[0]
	}
	tmpl := &x509.Certificate{
		Subject:     pkix.Name{CommonName: cn},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:    dnsNames,
		IPAddresses: ips,
	}
	certPEM, keyPEM, err := ca.loadOrIssue(dir, name, x509.ExtKeyUsageServerAuth, want, tmpl)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("serving certificate %s: %w", name, err)
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("serving certificate %s: %w", name, err)
	}
	return pair, nil
}

// IssueClient issues a client certificate for user (CN) in groups (O), kept as
// NAME.crt/NAME.key; one already there for the same user and groups and not near
// expiry is returned as it is.
func (ca *CA) IssueClient(dir, name, user string, groups []string) (certPEM, keyPEM []byte, err error) {
	// The O values form one DER SET, which is kept sorted, so compare groups as sets.
	sorted := slices.Sorted(slices.Values(groups))
	want := func(c *x509.Certificate) bool {
		return c.Subject.CommonName == user && slices.Equal(slices.Sorted(slices.Values(c.Subject.Organization)), sorted)
	}
	tmpl := &x509.Certificate{
		Subject:     pkix.Name{CommonName: user, Organization: groups},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	certPEM, keyPEM, err = ca.loadOrIssue(dir, name, x509.ExtKeyUsageClientAuth, want, tmpl)
	if err != nil {
		return nil, nil, fmt.Errorf("client certificate %s for %s: %w", name, user, err)
	}
	return certPEM, keyPEM, nil
}

// loadOrIssue returns dir/NAME.crt and .key when they verify against this CA for usage,
// satisfy want and are not near expiry; otherwise it issues tmpl with a new key and
// keeps it there.
func (ca *CA) loadOrIssue(dir, name string, usage x509.ExtKeyUsage, want func(*x509.Certificate) bool, tmpl *x509.Certificate) (certPEM, keyPEM []byte, err error) {
	certFile, keyFile := filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key")
	if certPEM, keyPEM, ok := ca.usable(certFile, keyFile, usage, want); ok {
		return certPEM, keyPEM, nil
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	der, err := ca.sign(tmpl, &key.PublicKey)
	if err != nil {
		return nil, nil, err
	}
	if certPEM, keyPEM, err = encodePair(der, key); err != nil {
		return nil, nil, err
	}
	// Key then certificate: until the certificate is replaced the old pair still
	// matches, and a crash in between leaves a pair that fails to load and is reissued.
	if err := writeFileAtomic(keyFile, keyPEM, 0o600); err != nil {
		return nil, nil, err
	}
	if err := writeFileAtomic(certFile, certPEM, 0o644); err != nil {
		return nil, nil, err
	}
	return certPEM, keyPEM, nil
}

// usable reads a kept pair and says whether it can be used as it is.
func (ca *CA) usable(certFile, keyFile string, usage x509.ExtKeyUsage, want func(*x509.Certificate) bool) (certPEM, keyPEM []byte, ok bool) {
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		return nil, nil, false
	}
	keyPEM, err = os.ReadFile(keyFile)
	if err != nil {
		return nil, nil, false
	}
	cert, _, err := parsePair(certPEM, keyPEM)
	if err != nil {
		return nil, nil, false
	}
	_, err = cert.Verify(x509.VerifyOptions{Roots: ca.Pool(), KeyUsages: []x509.ExtKeyUsage{usage}})
	if err != nil || time.Until(cert.NotAfter) < renewBefore || !want(cert) {
		return nil, nil, false
	}
	return certPEM, keyPEM, true
}
