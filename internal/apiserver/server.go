// Package apiserver is Berth's Kubernetes API server: discovery, the REST verbs over
// every built-in resource (one generic implementation, one table entry per resource),
// watch, patch, authentication. Objects are k8s.io/api types kept in etcd through
// package storage; apimachinery's codecs speak JSON, YAML and protobuf.
package apiserver

import (
	"context"
	"crypto/ecdsa"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/version"

	"github.com/berth-project/berth/internal/storage"
)

// User is who made a request.
type User struct {
	Name   string
	Groups []string
}

// Config wires the server to its store and its ways of knowing users.
type Config struct {
	Store storage.Store
	// Tokens resolves a bearer token (nodes, service accounts); nil: none accepted.
	Tokens func(token string) (User, bool)
	// Version is what /version reports.
	Version version.Info
	Log     *slog.Logger
	// Kubelets carries the requests proxied to kubelets (pods' log, exec, attach and
	// portforward): an *http.Transport whose TLS config holds the server's client
	// certificate. Nil: those requests get 503.
	Kubelets *http.Transport
	// ServiceCIDR is where Services' cluster IPs come from (default 10.43.0.0/16);
	// NodePorts the node-port range (default 30000-32767).
	ServiceCIDR string
	NodePorts   [2]int
	// ServiceAccountKey signs service account tokens; nil: the TokenRequest API is off.
	ServiceAccountKey *ecdsa.PrivateKey
	// Advertise and APIPort are where the default/kubernetes Service sends clients.
	Advertise net.IP
	APIPort   int
}

// Server serves the Kubernetes API. It is an http.Handler; TLS and client
// certificate verification are the listener's (see Serve).
type Server struct {
	store     storage.Store
	reg       *registry
	tokens    func(string) (User, bool)
	version   version.Info
	log       *slog.Logger
	kubelets  *http.Transport
	memo      eventMemo // decoded and encoded watch events, shared by watchers
	alloc     *allocator
	rbacCache rbacCache
	saKey     *ecdsa.PrivateKey
	issuer    string
	advertise net.IP
	apiPort   int

	oapi          openAPI       // the OpenAPI documents, built on first use
	managed       fieldManagers // managed fields and server-side apply, per resource
	createdFields createFields  // managed fields of creates, by the objects' shapes
	crd           crds          // the CRDs served (crd.go)

	mu      sync.Mutex
	cachers map[string]*storage.Cacher // per resource prefix: one etcd watch each
	ctx     context.Context
	stop    context.CancelFunc
}

// New returns a server over cfg.Store. Close stops its watches.
func New(cfg Config) *Server {
	ctx, cancel := context.WithCancel(context.Background())
	log := cfg.Log
	if log == nil {
		log = slog.Default()
	}
	cidr := cfg.ServiceCIDR
	if cidr == "" {
		cidr = "10.43.0.0/16"
	}
	ports := cfg.NodePorts
	if ports[0] == 0 {
		ports = [2]int{30000, 32767}
	}
	var alloc *allocator
	if _, n, err := net.ParseCIDR(cidr); err == nil && n.IP.To4() != nil {
		alloc = newAllocator(n, ports)
	} else {
		log.Error("service CIDR unusable: Services get no cluster IPs", "cidr", cidr, "err", err)
	}
	return &Server{
		alloc: alloc, advertise: cfg.Advertise, apiPort: cfg.APIPort,
		saKey: cfg.ServiceAccountKey, issuer: "https://kubernetes.default.svc.cluster.local",
		store: cfg.Store, reg: newRegistry(builtins), tokens: cfg.Tokens, version: cfg.Version, log: log, kubelets: cfg.Kubelets,
		cachers: map[string]*storage.Cacher{}, ctx: ctx, stop: cancel,
	}
}

// Close stops the server's watch caches (and so its watches of the store).
func (s *Server) Close() {
	s.stop()
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.cachers {
		c.Close()
	}
}

// cacher returns the watch cache of a resource, starting it on first use.
func (s *Server) cacher(res *resource) *storage.Cacher {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := res.storagePrefix()
	c, ok := s.cachers[p]
	if !ok {
		c = storage.NewCacher(s.store, p, 1000)
		s.cachers[p] = c
	}
	return c
}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	path := strings.TrimSuffix(r.URL.Path, "/")
	switch path {
	case "/healthz", "/livez", "/readyz":
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Write([]byte("ok"))
		return
	case "/version":
		s.writeRaw(w, r, http.StatusOK, "application/json", s.version)
		return
	}
	user, ok := s.authenticate(r)
	if !ok {
		s.writeError(w, r, apierrors.NewUnauthorized("Unauthorized"))
		return
	}
	r = r.WithContext(context.WithValue(r.Context(), userKey{}, user))
	user, err := s.impersonate(r, user)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	r = r.WithContext(context.WithValue(r.Context(), userKey{}, user))
	s.watchCRDs()
	parts := strings.Split(strings.Trim(path, "/"), "/")
	if isDiscovery(parts) {
		a := attributes{verb: "get", path: path}
		if ok, err := s.authorize(r.Context(), user, a); err != nil || !ok {
			s.writeError(w, r, forbidden(user, a))
			return
		}
	}
	switch {
	case path == "/openapi/v2" || path == "/openapi/v3" || strings.HasPrefix(path, "/openapi/v3/"):
		s.serveOpenAPI(w, r)
	case path == "/debug/pprof" || strings.HasPrefix(path, "/debug/pprof/"):
		s.serveProfiling(w, r)
	case path == "/api":
		s.serveAPI(w, r)
	case path == "/apis":
		s.serveAPIs(w, r)
	case parts[0] == "api" && len(parts) >= 2:
		s.serveGroupVersion(w, r, schema.GroupVersion{Version: parts[1]}, parts[2:])
	case parts[0] == "apis" && len(parts) == 2:
		if g := s.apiGroup(parts[1]); g != nil {
			s.writeRaw(w, r, http.StatusOK, "application/json", g)
			return
		}
		s.writeError(w, r, apierrors.NewNotFound(schema.GroupResource{}, path))
	case parts[0] == "apis" && len(parts) >= 3:
		s.serveGroupVersion(w, r, schema.GroupVersion{Group: parts[1], Version: parts[2]}, parts[3:])
	default:
		s.writeError(w, r, apierrors.NewNotFound(schema.GroupResource{}, path))
	}
}

type userKey struct{}

func userOf(ctx context.Context) User {
	u, _ := ctx.Value(userKey{}).(User)
	return u
}

// authenticate finds the user: a client certificate the listener verified against
// the cluster CA (CN user, O groups), or a bearer token.
func (s *Server) authenticate(r *http.Request) (User, bool) {
	if r.TLS != nil && len(r.TLS.VerifiedChains) > 0 && len(r.TLS.VerifiedChains[0]) > 0 {
		c := r.TLS.VerifiedChains[0][0]
		return User{Name: c.Subject.CommonName, Groups: append(c.Subject.Organization, "system:authenticated")}, true
	}
	if h := r.Header.Get("Authorization"); strings.HasPrefix(h, "Bearer ") {
		token := strings.TrimSpace(strings.TrimPrefix(h, "Bearer "))
		if s.tokens != nil {
			if u, ok := s.tokens(token); ok {
				u.Groups = append(u.Groups, "system:authenticated")
				return u, true
			}
		}
		if u, ok := s.serviceAccountUser(r.Context(), token); ok {
			u.Groups = append(u.Groups, "system:authenticated")
			return u, true
		}
	}
	return User{}, false
}

// serveGroupVersion routes what follows /api/v1 or /apis/GROUP/VERSION.
func (s *Server) serveGroupVersion(w http.ResponseWriter, r *http.Request, gv schema.GroupVersion, rest []string) {
	if len(s.reg.in(gv)) == 0 {
		s.writeError(w, r, apierrors.NewNotFound(schema.GroupResource{}, r.URL.Path))
		return
	}
	if len(rest) == 0 {
		s.writeRaw(w, r, http.StatusOK, "application/json", s.apiResources(gv))
		return
	}
	req := request{gv: gv}
	// namespaces/NS/RESOURCE[/NAME[/SUB]] addresses a namespaced resource; anything else
	// is RESOURCE[/NAME[/SUB]] (namespaces/NAME/status is the namespace's own).
	if rest[0] == "namespaces" && len(rest) >= 3 {
		if x := s.reg.get(gv.Group, gv.Version, rest[2]); x != nil && x.namespaced {
			req.namespace, rest = rest[1], rest[2:]
		}
	}
	req.res = s.reg.get(gv.Group, gv.Version, rest[0])
	if req.res == nil || len(rest) > 3 {
		s.writeError(w, r, apierrors.NewNotFound(schema.GroupResource{Group: gv.Group, Resource: rest[0]}, ""))
		return
	}
	if len(rest) > 1 {
		req.name = rest[1]
	}
	if len(rest) > 2 {
		req.sub = rest[2]
		if !contains(req.res.subresources, req.sub) {
			s.writeError(w, r, apierrors.NewNotFound(schema.GroupResource{Group: gv.Group, Resource: rest[0] + "/" + req.sub}, req.name))
			return
		}
	}
	a := attributes{verb: verbOf(r, req), group: gv.Group, resource: req.res.gvr.Resource, sub: req.sub, namespace: req.namespace, name: req.name}
	ok, err := s.authorize(r.Context(), userOf(r.Context()), a)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if !ok {
		s.writeError(w, r, forbidden(userOf(r.Context()), a))
		return
	}
	if answer, ok := reviews[req.res.kind]; ok {
		if r.Method != http.MethodPost {
			s.writeError(w, r, apierrors.NewMethodNotSupported(req.res.gvr.GroupResource(), strings.ToLower(r.Method)))
		} else if err := answer(s, w, r); err != nil {
			s.writeError(w, r, err)
		}
		return
	}
	s.serveResource(w, r, req)
}

// isDiscovery reports whether the path (split) is a discovery document rather than a
// resource: /api, /apis, /api/v1, /apis/GROUP and /apis/GROUP/VERSION.
func isDiscovery(parts []string) bool {
	switch parts[0] {
	case "api":
		return len(parts) <= 2
	case "apis":
		return len(parts) <= 3
	}
	return true
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
