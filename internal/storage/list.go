package storage

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// continueToken is what a continue string carries: the revision the first page was read
// at and where the next page starts, relative to the listed prefix so a token cannot
// reach outside it.
type continueToken struct {
	Rev   int64  `json:"rev"`
	Start string `json:"start"`
}

func encodeContinue(rev int64, start string) string {
	b, _ := json.Marshal(continueToken{Rev: rev, Start: start})
	return base64.RawURLEncoding.EncodeToString(b)
}

func decodeContinue(s string) (continueToken, error) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return continueToken{}, fmt.Errorf("continue %q: %w", s, ErrBadContinue)
	}
	var t continueToken
	if err := json.Unmarshal(b, &t); err != nil || t.Rev <= 0 {
		return continueToken{}, fmt.Errorf("continue %q: %w", s, ErrBadContinue)
	}
	return t, nil
}

// List reads the keys under prefix in key order. A prefix meant as a directory should end
// in "/": "/registry/pods/default" would also match "/registry/pods/default2/x". Every
// page of a paged list reads the revision of the first page, so the pages fit together
// however many writes happen between them; once that revision is compacted the next
// page fails with ErrCompacted, and the client starts over.
func (s *etcdStore) List(ctx context.Context, prefix string, o ListOptions) (ListResult, error) {
	rev, start := o.Revision, prefix
	if o.Continue != "" {
		t, err := decodeContinue(o.Continue)
		if err != nil {
			return ListResult{}, fmt.Errorf("list %s: %w", prefix, err)
		}
		rev, start = t.Rev, prefix+t.Start
	}
	opts := []clientv3.OpOption{clientv3.WithRange(clientv3.GetPrefixRangeEnd(prefix))}
	if rev > 0 {
		opts = append(opts, clientv3.WithRev(rev))
	}
	if o.Limit > 0 {
		opts = append(opts, clientv3.WithLimit(o.Limit))
	}
	resp, err := s.c.Get(ctx, start, opts...)
	if err != nil {
		return ListResult{}, fmt.Errorf("list %s at revision %d: %w", prefix, rev, etcdErr(err))
	}
	if rev == 0 {
		rev = resp.Header.Revision
	}
	r := ListResult{Revision: rev, Items: make([]KV, 0, len(resp.Kvs))}
	for _, kv := range resp.Kvs {
		item, err := s.decode(kv)
		if err != nil {
			return ListResult{}, fmt.Errorf("list %s: %w", prefix, err)
		}
		r.Items = append(r.Items, item)
	}
	if resp.More && len(resp.Kvs) > 0 {
		last := string(resp.Kvs[len(resp.Kvs)-1].Key)
		r.Continue = encodeContinue(rev, last[len(prefix):]+"\x00")
		r.Remaining = resp.Count - int64(len(resp.Kvs))
	}
	return r, nil
}

// listAll reads every key under prefix at rev (0: latest) page by page, at one revision.
func listAll(ctx context.Context, s Store, prefix string, rev int64) (ListResult, error) {
	const page = 1000
	all := ListResult{}
	o := ListOptions{Limit: page, Revision: rev}
	for {
		r, err := s.List(ctx, prefix, o)
		if err != nil {
			return ListResult{}, err
		}
		all.Items = append(all.Items, r.Items...)
		all.Revision = r.Revision
		if r.Continue == "" {
			return all, nil
		}
		o.Continue = r.Continue
	}
}
