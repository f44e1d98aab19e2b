package storage

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// EmbedOptions tunes StartEmbedded. The zero value is what `berth server` wants.
type EmbedOptions struct {
	// SocketPath is the client unix socket. Default: DIR/etcd.sock, or a short path under
	// the temporary directory when that is too long for a unix socket (108 bytes).
	SocketPath string
	// TCP listens on 127.0.0.1 with a random port instead of a unix socket, for tools
	// (etcdctl) that want an address.
	TCP bool
	// CompactionRetention is how much history auto-compaction keeps. Default 5 minutes;
	// negative turns auto-compaction off.
	CompactionRetention time.Duration
	// QuotaBytes is the backend size limit (etcd's --quota-backend-bytes). Default 4 GiB.
	QuotaBytes int64
	// LogLevel is etcd's zap level: "error" by default (etcd is chatty at info).
	LogLevel string
}

const (
	defaultCompactionRetention = 5 * time.Minute
	defaultQuotaBytes          = 4 << 30
	maxUnixSocketPath          = 100
)

// Embedded is a single-node etcd running inside this process, its data in one directory.
type Embedded struct {
	etcd      *embed.Etcd
	level     zap.AtomicLevel
	endpoints []string
	sockDir   string // a temporary directory we made for the socket, removed on Close
}

// StartEmbedded starts a single-node etcd with its data in dir (created if needed, kept
// across restarts) and returns once it serves clients. It has no peer listener: a
// single node never dials one. ctx bounds the start-up only.
func StartEmbedded(ctx context.Context, dir string, o EmbedOptions) (*Embedded, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("etcd data dir %s: %w", dir, err)
	}
	cfg, level, sockDir, err := embedConfig(dir, o)
	if err != nil {
		return nil, err
	}
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		removeSockDir(sockDir)
		return nil, fmt.Errorf("start etcd in %s: %w", dir, err)
	}
	select {
	case <-e.Server.ReadyNotify():
	case err := <-e.Err():
		e.Close()
		removeSockDir(sockDir)
		return nil, fmt.Errorf("start etcd in %s: %w", dir, err)
	case <-ctx.Done():
		e.Close()
		removeSockDir(sockDir)
		return nil, fmt.Errorf("start etcd in %s: %w", dir, ctx.Err())
	}
	m := &Embedded{etcd: e, level: level, sockDir: sockDir}
	for _, l := range e.Clients {
		addr := l.Addr()
		if addr.Network() == "unix" {
			m.endpoints = append(m.endpoints, "unix://"+addr.String())
		} else {
			m.endpoints = append(m.endpoints, "http://"+addr.String())
		}
	}
	return m, nil
}

func embedConfig(dir string, o EmbedOptions) (*embed.Config, zap.AtomicLevel, string, error) {
	level := zap.NewAtomicLevel()
	cfg := embed.NewConfig()
	cfg.Name = "berth"
	cfg.Dir = dir
	// Ticks: a single node elects itself after one election timeout (InitialElectionTickAdvance
	// skips most of it), so small ticks make a warm restart ready in tens of milliseconds.
	cfg.TickMs = 10
	cfg.ElectionMs = 100
	cfg.ListenPeerUrls = nil
	// The member's identity is derived from its advertised peer URL and must stay the same
	// across restarts; nobody ever dials it.
	peer, _ := url.Parse("http://127.0.0.1:2380")
	cfg.AdvertisePeerUrls = []url.URL{*peer}
	cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
	cfg.EnableGRPCGateway = false
	cfg.QuotaBackendBytes = o.QuotaBytes
	if cfg.QuotaBackendBytes == 0 {
		cfg.QuotaBackendBytes = defaultQuotaBytes
	}
	retention := o.CompactionRetention
	if retention == 0 {
		retention = defaultCompactionRetention
	}
	if retention > 0 {
		cfg.AutoCompactionMode = embed.CompactorModePeriodic
		cfg.AutoCompactionRetention = retention.String()
	}
	// Progress notifications let watchers (the watch cache) learn the store's revision
	// when nothing under their prefix changes.
	cfg.WatchProgressNotifyInterval = 5 * time.Second

	name := o.LogLevel
	if name == "" {
		name = "error"
	}
	lvl, err := zapcore.ParseLevel(name)
	if err != nil {
		return nil, level, "", fmt.Errorf("etcd log level %q: %w", name, err)
	}
	level.SetLevel(lvl)
	zc := zap.NewProductionConfig()
	zc.Level = level
	zc.OutputPaths = []string{"stderr"}
	zc.ErrorOutputPaths = []string{"stderr"}
	lg, err := zc.Build(zap.WrapCore(func(c zapcore.Core) zapcore.Core { return quietCore{c} }))
	if err != nil {
		return nil, level, "", fmt.Errorf("etcd logger: %w", err)
	}
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(lg)
	cfg.LogLevel = name

	var client url.URL
	sockDir := ""
	switch {
	case o.TCP:
		client = url.URL{Scheme: "http", Host: "127.0.0.1:0"}
	default:
		sock := o.SocketPath
		if sock == "" {
			sock = filepath.Join(dir, "etcd.sock")
			if abs, err := filepath.Abs(sock); err == nil {
				sock = abs
			}
			if len(sock) > maxUnixSocketPath {
				d, err := os.MkdirTemp("", "berth-etcd-")
				if err != nil {
					return nil, level, "", fmt.Errorf("etcd socket dir: %w", err)
				}
				sockDir, sock = d, filepath.Join(d, "etcd.sock")
			}
		}
		if len(sock) > maxUnixSocketPath {
			return nil, level, "", fmt.Errorf("etcd socket %s: %w", sock, errors.New("path too long for a unix socket"))
		}
		client = url.URL{Scheme: "unix", Path: sock}
	}
	cfg.ListenClientUrls = []url.URL{client}
	cfg.AdvertiseClientUrls = []url.URL{client}
	return cfg, level, sockDir, nil
}

func removeSockDir(d string) {
	if d != "" {
		os.RemoveAll(d)
	}
}

// Endpoints are the client URLs to pass to NewEtcd (EtcdConfig.Endpoints).
func (m *Embedded) Endpoints() []string { return append([]string(nil), m.endpoints...) }

// Err reports a fatal error of the running etcd (its listeners failed); the API server
// should stop on it.
func (m *Embedded) Err() <-chan error { return m.etcd.Err() }

// Close stops etcd after in-flight requests end and releases its data directory.
func (m *Embedded) Close() error {
	// etcd logs each listener's "server closed" as an error while it stops.
	m.level.SetLevel(zapcore.FatalLevel)
	m.etcd.Close()
	removeSockDir(m.sockDir)
	return nil
}
