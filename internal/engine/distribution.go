package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	goruntime "runtime"
	"sync/atomic"
	"time"

	"github.com/distribution/reference"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/moby/moby/api/types/registry"

	"github.com/berth-project/berth/internal/engine/errdefs"
)

// Progress is one line of a pull's or push's progress, in the terms Docker streams:
// ID is a layer's short id (or a tag) and Status what happens to it; Current and Total
// count bytes while it moves.
type Progress struct {
	ID             string
	Status         string
	Current, Total int64
	// Aux carries the result of a push (tag, digest, size), for the API's aux message.
	Aux any
}

// ProgressFunc receives progress; it may be called from several goroutines at once.
type ProgressFunc func(Progress)

// registryHost is where a Docker reference lives ("docker.io" for Docker Hub names).
func registryHost(named reference.Named) string { return reference.Domain(named) }

// remoteRef turns a normalised Docker reference into go-containerregistry's.
func (e *Engine) remoteRef(named reference.Named) (name.Reference, error) {
	opts := []name.Option{name.WeakValidation}
	if e.registries.IsInsecure(registryHost(named)) {
		opts = append(opts, name.Insecure)
	}
	ref, err := name.ParseReference(named.String(), opts...)
	if err != nil {
		return nil, errdefs.Invalid(fmt.Sprintf("invalid reference format: %s", named))
	}
	return ref, nil
}

// remoteOptions are the options of every registry call: the engine's trust for the
// registry, the client's credentials and the host's platform.
func (e *Engine) remoteOptions(ctx context.Context, host string, auth *registry.AuthConfig) ([]remote.Option, error) {
	tr, err := e.registries.Transport(host)
	if err != nil {
		return nil, err
	}
	opts := []remote.Option{
		remote.WithContext(ctx),
		remote.WithTransport(tr),
		remote.WithPlatform(v1.Platform{OS: "linux", Architecture: goruntime.GOARCH}),
		remote.WithJobs(4),
		remote.WithUserAgent("berth"),
	}
	if a := authenticator(auth); a != nil {
		opts = append(opts, remote.WithAuth(a))
	}
	return opts, nil
}

func authenticator(a *registry.AuthConfig) authn.Authenticator {
	if a == nil || (a.Username == "" && a.Password == "" && a.Auth == "" && a.IdentityToken == "" && a.RegistryToken == "") {
		return nil
	}
	return authn.FromConfig(authn.AuthConfig{
		Username: a.Username, Password: a.Password, Auth: a.Auth,
		IdentityToken: a.IdentityToken, RegistryToken: a.RegistryToken,
	})
}

// registryError turns a registry's answer into an engine error with Docker's wording.
func registryError(op string, named reference.Named, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, context.Canceled) {
		return err
	}
	var te *transport.Error
	if errors.As(err, &te) {
		switch te.StatusCode {
		case http.StatusUnauthorized, http.StatusForbidden:
			if op == "pull" {
				return errdefs.NotFound(fmt.Sprintf("pull access denied for %s, repository does not exist or may require 'docker login': %s", reference.FamiliarName(named), te.Error()))
			}
			return errdefs.New(errdefs.ErrUnauthorized, fmt.Sprintf("unauthorized: authentication required (%s)", te.Error()))
		case http.StatusNotFound:
			return errdefs.NotFound(fmt.Sprintf("manifest for %s not found: manifest unknown: %s", reference.FamiliarString(named), te.Error()))
		}
		return fmt.Errorf("%s %s: %w", op, reference.FamiliarString(named), err)
	}
	return errdefs.Unavailable(fmt.Sprintf("%s %s: %v", op, reference.FamiliarString(named), err))
}

// countingReader reports how many bytes went through it, at most every 100 ms.
type countingReader struct {
	r     io.Reader
	n     atomic.Int64
	last  time.Time
	every func(n int64)
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	total := c.n.Add(int64(n))
	if c.every != nil && (time.Since(c.last) > 100*time.Millisecond || err != nil) {
		c.last = time.Now()
		c.every(total)
	}
	return n, err
}

// shortDigest is the 12-hex id Docker shows for a layer.
func shortDigest(h v1.Hash) string {
	if len(h.Hex) > 12 {
		return h.Hex[:12]
	}
	return h.Hex
}

// tagOrDigest is how a reference's version is shown ("1.0", or the digest).
func tagOrDigest(named reference.Named) string {
	if d, ok := named.(reference.Digested); ok {
		return d.Digest().String()
	}
	if t, ok := named.(reference.Tagged); ok {
		return t.Tag()
	}
	return "latest"
}
