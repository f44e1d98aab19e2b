package storage

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/etcdserver/api/v3client"
	"go.uber.org/zap"
)

// EtcdConfig says how to reach etcd.
type EtcdConfig struct {
	Endpoints []string // "http://host:port", "https://host:port" or "unix:///path"
	// TLS is used for https endpoints; nil means plain connections.
	TLS *tls.Config
	// Transformer encrypts values at rest; nil stores values as given.
	Transformer Transformer
	// DialTimeout bounds NewEtcd's first contact with etcd. Default 5 s.
	DialTimeout time.Duration
	// Embedded, when set, is called in-process instead of through Endpoints: requests and
	// watch events go to the etcd server as Go values, with no gRPC encoding, HTTP/2 or
	// socket in between (a third of the API server's etcd cost).
	Embedded *Embedded
}

// TLSFromFiles builds the client TLS configuration for an etcd cluster from PEM files
// (kube-apiserver's --etcd-cafile, --etcd-certfile, --etcd-keyfile); any may be empty.
func TLSFromFiles(caFile, certFile, keyFile string) (*tls.Config, error) {
	c := &tls.Config{MinVersion: tls.VersionTLS12}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("etcd CA: %w", err)
		}
		c.RootCAs = x509.NewCertPool()
		if !c.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("etcd CA %s: no certificates", caFile)
		}
	}
	if certFile != "" || keyFile != "" {
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, fmt.Errorf("etcd client certificate: %w", err)
		}
		c.Certificates = []tls.Certificate{cert}
	}
	return c, nil
}

// etcdStore is the Store over an etcd v3 client. Every write is one transaction whose
// compare makes it conditional; a failed compare reads the key in the same transaction
// so the caller learns why without a second round trip.
type etcdStore struct {
	c  *clientv3.Client
	tr Transformer
	// progress: the servers' progress notifications can be trusted (see progressReliable).
	progress bool
}

var (
	_ Store             = (*etcdStore)(nil)
	_ OptionsWatcher    = (*etcdStore)(nil)
	_ ProgressRequester = (*etcdStore)(nil)
)

// NewEtcd connects to etcd and checks that it answers within cfg.DialTimeout.
func NewEtcd(cfg EtcdConfig) (Store, error) {
	timeout := cfg.DialTimeout
	if timeout == 0 {
		timeout = 5 * time.Second
	}
	var c *clientv3.Client
	switch {
	case cfg.Embedded != nil:
		c, cfg.Endpoints = v3client.New(cfg.Embedded.etcd.Server), nil
	case len(cfg.Endpoints) == 0:
		return nil, errors.New("etcd: no endpoints")
	default:
		var err error
		c, err = clientv3.New(clientv3.Config{
			Endpoints:            cfg.Endpoints,
			TLS:                  cfg.TLS,
			DialTimeout:          timeout,
			DialKeepAliveTime:    30 * time.Second,
			DialKeepAliveTimeout: 10 * time.Second,
			Logger:               zap.NewNop(),
		})
		if err != nil {
			return nil, fmt.Errorf("etcd %v: %w", cfg.Endpoints, err)
		}
	}
	s := &etcdStore{c: c, tr: cfg.Transformer}
	if s.tr == nil {
		s.tr = identity{}
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if _, err := s.CurrentRevision(ctx); err != nil {
		c.Close()
		return nil, fmt.Errorf("etcd %v: %w", cfg.Endpoints, err)
	}
	s.progress = true // the embedded etcd's version is one that can be trusted
	for _, ep := range cfg.Endpoints {
		st, err := c.Status(ctx, ep)
		if err != nil || !progressReliable(st.Version) {
			s.progress = false
		}
	}
	return s, nil
}

// progressReliable says whether an etcd server of version v sends a progress
// notification only once its watch has delivered every event up to the notified
// revision. Earlier servers could send it first (etcd issue 15220); kube-apiserver
// trusts progress notifications from 3.4.31, 3.5.13 and 3.6 on, and so does Berth.
func progressReliable(v string) bool {
	var major, minor, patch int
	if _, err := fmt.Sscanf(v, "%d.%d.%d", &major, &minor, &patch); err != nil {
		return false
	}
	switch {
	case major != 3:
		return major > 3
	case minor == 4:
		return patch >= 31
	case minor == 5:
		return patch >= 13
	}
	return minor > 5
}

// etcdErr turns etcd's errors into this package's sentinels.
func etcdErr(err error) error {
	switch {
	case errors.Is(err, rpctypes.ErrCompacted):
		return fmt.Errorf("%w: %w", ErrCompacted, err)
	case errors.Is(err, rpctypes.ErrFutureRev):
		return fmt.Errorf("%w: %w", ErrFutureRevision, err)
	}
	return err
}

func (s *etcdStore) decode(kv *mvccpb.KeyValue) (KV, error) {
	v, err := s.tr.FromStorage(string(kv.Key), kv.Value)
	if err != nil {
		return KV{}, err
	}
	return KV{Key: string(kv.Key), Value: v, ModRevision: kv.ModRevision, CreateRevision: kv.CreateRevision}, nil
}

func (s *etcdStore) Get(ctx context.Context, key string) (KV, error) {
	resp, err := s.c.Get(ctx, key)
	if err != nil {
		return KV{}, fmt.Errorf("get %s: %w", key, etcdErr(err))
	}
	if len(resp.Kvs) == 0 {
		return KV{}, fmt.Errorf("get %s: %w", key, ErrNotFound)
	}
	kv, err := s.decode(resp.Kvs[0])
	if err != nil {
		return KV{}, fmt.Errorf("get: %w", err)
	}
	return kv, nil
}

func (s *etcdStore) CurrentRevision(ctx context.Context) (int64, error) {
	// A linearizable read of any key answers with the store's revision.
	resp, err := s.c.Get(ctx, "\x00", clientv3.WithCountOnly())
	if err != nil {
		return 0, fmt.Errorf("current revision: %w", etcdErr(err))
	}
	return resp.Header.Revision, nil
}

func (s *etcdStore) Create(ctx context.Context, key string, value []byte) (int64, error) {
	stored, err := s.tr.ToStorage(key, value)
	if err != nil {
		return 0, fmt.Errorf("create %s: %w", key, err)
	}
	resp, err := s.c.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).
		Then(clientv3.OpPut(key, string(stored))).
		Commit()
	if err != nil {
		return 0, fmt.Errorf("create %s: %w", key, etcdErr(err))
	}
	if !resp.Succeeded {
		return 0, fmt.Errorf("create %s: %w", key, ErrExists)
	}
	return resp.Header.Revision, nil
}

// mustExist compares rev with the key's ModRevision, or only checks that it exists when rev is 0.
func mustExist(key string, rev int64) clientv3.Cmp {
	if rev == 0 {
		return clientv3.Compare(clientv3.CreateRevision(key), ">", 0)
	}
	return clientv3.Compare(clientv3.ModRevision(key), "=", rev)
}

// whyFailed reads the Else branch's get: the key is gone, or it changed.
func whyFailed(resp *clientv3.TxnResponse) error {
	if len(resp.Responses) == 0 || len(resp.Responses[0].GetResponseRange().GetKvs()) == 0 {
		return ErrNotFound
	}
	return ErrConflict
}

func (s *etcdStore) Update(ctx context.Context, key string, value []byte, rev int64) (int64, error) {
	stored, err := s.tr.ToStorage(key, value)
	if err != nil {
		return 0, fmt.Errorf("update %s: %w", key, err)
	}
	resp, err := s.c.Txn(ctx).
		If(mustExist(key, rev)).
		Then(clientv3.OpPut(key, string(stored))).
		Else(clientv3.OpGet(key, clientv3.WithKeysOnly())).
		Commit()
	if err != nil {
		return 0, fmt.Errorf("update %s: %w", key, etcdErr(err))
	}
	if !resp.Succeeded {
		return 0, fmt.Errorf("update %s at revision %d: %w", key, rev, whyFailed(resp))
	}
	return resp.Header.Revision, nil
}

func (s *etcdStore) GuaranteedUpdate(ctx context.Context, key string, fn func(cur KV, exists bool) ([]byte, error)) (KV, error) {
	return s.guaranteedUpdate(ctx, key, nil, fn)
}

// guaranteedUpdate is GuaranteedUpdate starting from cached, a copy of the key that may be
// stale (a watch cache's), rather than from a read, as upstream's GuaranteedUpdate does with
// its watch cache: a stale copy costs a failed compare, whose answer carries the current
// value. Until the current value is known, fn failing or finding nothing to change may be
// the stale copy's doing, so the key is read and fn tried again.
func (s *etcdStore) guaranteedUpdate(ctx context.Context, key string, cached *KV, fn func(cur KV, exists bool) ([]byte, error)) (KV, error) {
	var cur KV
	exists, current := cached != nil, cached == nil
	if cached != nil {
		cur = *cached
	} else {
		var err error
		cur, err = s.Get(ctx, key)
		exists = err == nil
		if err != nil && !errors.Is(err, ErrNotFound) {
			return KV{}, err
		}
	}
	for {
		if !exists {
			cur = KV{Key: key}
		}
		value, err := fn(cur, exists)
		if (err != nil || (exists && bytes.Equal(value, cur.Value))) && !current {
			if cur, err = s.Get(ctx, key); err != nil && !errors.Is(err, ErrNotFound) {
				return KV{}, err
			}
			exists, current = err == nil, true
			continue
		}
		if err != nil {
			return KV{}, err
		}
		if exists && bytes.Equal(value, cur.Value) {
			return cur, nil
		}
		stored, err := s.tr.ToStorage(key, value)
		if err != nil {
			return KV{}, fmt.Errorf("update %s: %w", key, err)
		}
		cmp := clientv3.Compare(clientv3.CreateRevision(key), "=", 0)
		if exists {
			cmp = clientv3.Compare(clientv3.ModRevision(key), "=", cur.ModRevision)
		}
		resp, err := s.c.Txn(ctx).If(cmp).
			Then(clientv3.OpPut(key, string(stored))).
			Else(clientv3.OpGet(key)).
			Commit()
		if err != nil {
			return KV{}, fmt.Errorf("update %s: %w", key, etcdErr(err))
		}
		if resp.Succeeded {
			created := cur.CreateRevision
			if !exists {
				created = resp.Header.Revision
			}
			return KV{Key: key, Value: value, ModRevision: resp.Header.Revision, CreateRevision: created}, nil
		}
		// Lost a race (or started from a stale copy): retry with what the failed
		// transaction read, which is current.
		kvs := resp.Responses[0].GetResponseRange().GetKvs()
		exists, current = len(kvs) > 0, true
		if exists {
			if cur, err = s.decode(kvs[0]); err != nil {
				return KV{}, fmt.Errorf("update: %w", err)
			}
		}
	}
}

func (s *etcdStore) Delete(ctx context.Context, key string, rev int64) (KV, error) {
	resp, err := s.c.Txn(ctx).
		If(mustExist(key, rev)).
		Then(clientv3.OpDelete(key, clientv3.WithPrevKV())).
		Else(clientv3.OpGet(key, clientv3.WithKeysOnly())).
		Commit()
	if err != nil {
		return KV{}, fmt.Errorf("delete %s: %w", key, etcdErr(err))
	}
	if !resp.Succeeded {
		return KV{}, fmt.Errorf("delete %s at revision %d: %w", key, rev, whyFailed(resp))
	}
	prev := resp.Responses[0].GetResponseDeleteRange().GetPrevKvs()
	if len(prev) == 0 { // the compare saw the key, so this does not happen
		return KV{}, fmt.Errorf("delete %s: %w", key, ErrNotFound)
	}
	kv, err := s.decode(prev[0])
	if err != nil {
		return KV{}, fmt.Errorf("delete: %w", err)
	}
	kv.ModRevision = resp.Header.Revision
	return kv, nil
}

// RequestProgress makes etcd send every watch of this client a progress notification
// with its current revision; errors.ErrUnsupported on servers whose notifications cannot
// be trusted. The context carries the same metadata as the watches (require-leader),
// or the client would look for them on another stream.
func (s *etcdStore) RequestProgress(ctx context.Context) error {
	if !s.progress {
		return fmt.Errorf("request watch progress: etcd too old: %w", errors.ErrUnsupported)
	}
	if err := s.c.RequestProgress(clientv3.WithRequireLeader(ctx)); err != nil {
		return fmt.Errorf("request watch progress: %w", err)
	}
	return nil
}

func (s *etcdStore) Close() error { return s.c.Close() }
