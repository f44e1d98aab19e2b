package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/moby/moby/api/types/registry"

	"github.com/berth-project/berth/internal/engine/errdefs"
)

// registryOf is the registry a `docker login` server address names ("https://h:p/v1/"
// and "h:p" alike); Docker Hub's addresses are docker.io.
func registryOf(addr string) string {
	addr = strings.TrimPrefix(strings.TrimPrefix(addr, "https://"), "http://")
	addr, _, _ = strings.Cut(addr, "/")
	switch addr {
	case "", "index.docker.io", "registry-1.docker.io", "docker.io":
		return "docker.io"
	}
	return addr
}

func (e *Engine) registryName(host string) (name.Registry, error) {
	opts := []name.Option{name.WeakValidation}
	if e.registries.IsInsecure(host) {
		opts = append(opts, name.Insecure)
	}
	reg, err := name.NewRegistry(host, opts...)
	if err != nil {
		return name.Registry{}, errdefs.Invalid(fmt.Sprintf("invalid registry address %q: %v", host, err))
	}
	return reg, nil
}

// Login checks the credentials against the registry, as `docker login` asks: the
// registry's /v2/ must answer 200 with them (after the token dance, if it wants one).
func (e *Engine) Login(ctx context.Context, a registry.AuthConfig) error {
	host := registryOf(a.ServerAddress)
	reg, err := e.registryName(host)
	if err != nil {
		return err
	}
	base, err := e.registries.Transport(host)
	if err != nil {
		return err
	}
	url := "https://" + reg.RegistryStr() + "/v2/"
	auth := authenticator(&a)
	if auth == nil {
		return errdefs.Invalid("no credentials given")
	}
	rt, err := transport.NewWithContext(ctx, reg, auth, base, nil)
	if err != nil {
		var te *transport.Error
		if errors.As(err, &te) && (te.StatusCode == http.StatusUnauthorized || te.StatusCode == http.StatusForbidden) {
			return errdefs.New(errdefs.ErrUnauthorized, fmt.Sprintf("login attempt to %s failed with status: %d %s", url, te.StatusCode, http.StatusText(te.StatusCode)))
		}
		return errdefs.Unavailable(fmt.Sprintf("login to %s: %v", host, err))
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := (&http.Client{Transport: rt}).Do(req)
	if err != nil {
		return errdefs.Unavailable(fmt.Sprintf("login to %s: %v", host, err))
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return errdefs.New(errdefs.ErrUnauthorized, fmt.Sprintf("login attempt to %s failed with status: %s", url, resp.Status))
	}
	return nil
}

// Search finds repositories whose name contains the term's query, from the registry's
// catalog (registries without Docker Hub's search API have only that): `docker search
// HOST:PORT/QUERY`.
func (e *Engine) Search(ctx context.Context, term string, limit int, auth *registry.AuthConfig) ([]registry.SearchResult, error) {
	host, query := "docker.io", term
	if first, rest, ok := strings.Cut(term, "/"); ok && (strings.ContainsAny(first, ".:") || first == "localhost") {
		host, query = first, rest
	}
	if host == "docker.io" {
		return nil, errdefs.Unavailable("searching Docker Hub needs the internet; name a registry: docker search HOST:PORT/NAME")
	}
	reg, err := e.registryName(host)
	if err != nil {
		return nil, err
	}
	opts, err := e.remoteOptions(ctx, host, auth)
	if err != nil {
		return nil, err
	}
	repos, err := remote.Catalog(ctx, reg, opts...)
	if err != nil {
		var te *transport.Error
		if errors.As(err, &te) && te.StatusCode == http.StatusUnauthorized {
			return nil, errdefs.New(errdefs.ErrUnauthorized, fmt.Sprintf("search %s: unauthorized: log in first (docker login %s)", host, host))
		}
		return nil, errdefs.Unavailable(fmt.Sprintf("search %s: %v", host, err))
	}
	sort.Strings(repos)
	out := []registry.SearchResult{}
	for _, r := range repos {
		if strings.Contains(r, query) {
			out = append(out, registry.SearchResult{Name: host + "/" + r})
			if limit > 0 && len(out) >= limit {
				break
			}
		}
	}
	return out, nil
}
