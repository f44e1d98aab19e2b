package image

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Registries says how the engine trusts registries, as Docker does: CAs and client
// certificates from CertsDir/HOST:PORT/ (*.crt are CAs, *.cert with *.key a client
// certificate), the system CAs otherwise, and a list of insecure registries (host:port
// names or CIDRs) that may be spoken to without verified TLS, or over plain HTTP.
// 127.0.0.0/8 is insecure unless listed otherwise, as in Docker.
type Registries struct {
	CertsDir string
	Insecure []string
}

// IsInsecure reports whether host (HOST[:PORT]) may skip TLS verification.
func (r *Registries) IsInsecure(host string) bool {
	list := append([]string{"127.0.0.0/8", "::1/128"}, r.Insecure...)
	h := host
	if hh, _, err := net.SplitHostPort(host); err == nil {
		h = hh
	}
	ip := net.ParseIP(h)
	if h == "localhost" {
		ip = net.IPv4(127, 0, 0, 1)
	}
	for _, entry := range list {
		if entry == host || entry == h {
			return true
		}
		if _, cidr, err := net.ParseCIDR(entry); err == nil && ip != nil && cidr.Contains(ip) {
			return true
		}
	}
	return false
}

// Transport returns an HTTP transport for talking to the registry at host. certs.d is
// read on every call, so a CA dropped in takes effect on the next pull or push.
func (r *Registries) Transport(host string) (http.RoundTripper, error) {
	cfg, err := r.tlsConfig(host)
	if err != nil {
		return nil, err
	}
	t := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:       cfg,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: 60 * time.Second,
		MaxIdleConnsPerHost:   8,
		IdleConnTimeout:       90 * time.Second,
		ForceAttemptHTTP2:     true,
		// Layers are compressed already; asking for gzip would only cost CPU.
		DisableCompression: true,
		WriteBufferSize:    256 << 10,
		ReadBufferSize:     256 << 10,
	}
	return t, nil
}

func (r *Registries) tlsConfig(host string) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: r.IsInsecure(host)}
	if r.CertsDir == "" {
		return cfg, nil
	}
	dir := filepath.Join(r.CertsDir, strings.ReplaceAll(host, "/", "_"))
	entries, err := os.ReadDir(dir)
	if os.IsNotExist(err) {
		return cfg, nil
	}
	if err != nil {
		return nil, err
	}
	for _, e := range entries {
		p := filepath.Join(dir, e.Name())
		switch {
		case strings.HasSuffix(e.Name(), ".crt"):
			if cfg.RootCAs == nil {
				if cfg.RootCAs, err = x509.SystemCertPool(); err != nil || cfg.RootCAs == nil {
					cfg.RootCAs = x509.NewCertPool()
				}
			}
			data, err := os.ReadFile(p)
			if err != nil {
				return nil, err
			}
			if !cfg.RootCAs.AppendCertsFromPEM(data) {
				return nil, fmt.Errorf("%s: no PEM certificate found", p)
			}
		case strings.HasSuffix(e.Name(), ".cert"):
			key := strings.TrimSuffix(p, ".cert") + ".key"
			pair, err := tls.LoadX509KeyPair(p, key)
			if err != nil {
				return nil, fmt.Errorf("client certificate %s: %w", p, err)
			}
			cfg.Certificates = append(cfg.Certificates, pair)
		}
	}
	return cfg, nil
}
