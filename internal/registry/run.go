package registry

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"
)

// RunConfig is what `berth registry` serves.
type RunConfig struct {
	Config
	// Addr is the HOST:PORT to listen on.
	Addr string
	// TLSCert and TLSKey, when both set, serve HTTPS from these PEM files.
	TLSCert, TLSKey string
}

// Run serves the registry on cfg.Addr until ctx is done, then shuts down gracefully.
func Run(ctx context.Context, cfg RunConfig) error {
	if (cfg.TLSCert == "") != (cfg.TLSKey == "") {
		return errors.New("registry: --tls-cert and --tls-key go together")
	}
	var tlsConfig *tls.Config
	if cfg.TLSCert != "" {
		cert, err := tls.LoadX509KeyPair(cfg.TLSCert, cfg.TLSKey)
		if err != nil {
			return fmt.Errorf("registry: TLS: %w", err)
		}
		tlsConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	srv, err := New(cfg.Config)
	if err != nil {
		return err
	}
	defer srv.Close()
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("registry: %w", err)
	}
	scheme := "http"
	if tlsConfig != nil {
		scheme = "https"
	}
	hs := &http.Server{
		Handler:           srv,
		ReadHeaderTimeout: 30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		TLSConfig:         tlsConfig,
		// HTTP/2 (over TLS) lets a client send only a window's worth of data per round trip:
		// Go's default 1 MiB caps an upload at ~20 MB/s at 50 ms; the largest allowed windows
		// raise that fourfold.
		HTTP2: &http.HTTP2Config{
			MaxReceiveBufferPerConnection: 4<<20 - 1,
			MaxReceiveBufferPerStream:     4<<20 - 1,
		},
	}
	cfg.Logger.Info("registry listening", "addr", ln.Addr().String(), "scheme", scheme,
		"data", cfg.DataDir, "auth", cfg.Htpasswd != "")
	done := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
		case <-done:
			return
		}
		shut, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		hs.Shutdown(shut)
	}()
	if tlsConfig != nil {
		// ServeTLS uses hs.TLSConfig's certificate and adds HTTP/2 to it.
		err = hs.ServeTLS(ln, "", "")
	} else {
		err = hs.Serve(ln)
	}
	close(done)
	if errors.Is(err, http.ErrServerClosed) {
		cfg.Logger.Info("registry stopped")
		return nil
	}
	return fmt.Errorf("registry: %w", err)
}
