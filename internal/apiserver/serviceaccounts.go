package apiserver

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"

	"github.com/berth-project/berth/internal/storage"
)

// Service account tokens are JWTs (ES256) the server signs through the TokenRequest
// API (serviceaccounts/token: `kubectl create token`, the kubelet's projected volumes),
// with upstream's claims: the account, optionally the pod they are bound to, the
// audiences and an expiry. A token authenticates as system:serviceaccount:NS:NAME in
// groups system:serviceaccounts and system:serviceaccounts:NS while the account (and
// the pod it is bound to) still exist with the same uid.

type saClaims struct {
	jwt.RegisteredClaims
	Kubernetes k8sClaims `json:"kubernetes.io"`
}

type k8sClaims struct {
	Namespace      string `json:"namespace"`
	ServiceAccount ref    `json:"serviceaccount"`
	Pod            *ref   `json:"pod,omitempty"`
	Secret         *ref   `json:"secret,omitempty"`
	Node           *ref   `json:"node,omitempty"`
}

type ref struct {
	Name string `json:"name"`
	UID  string `json:"uid"`
}

// tokenRequest serves POST serviceaccounts/NAME/token.
func (s *Server) tokenRequest(w http.ResponseWriter, r *http.Request, req request, body []byte) error {
	if s.saKey == nil {
		return apierrors.NewServiceUnavailable("this server has no service account signing key")
	}
	obj, err := decodeObject(r, body, authenticationv1.SchemeGroupVersion.WithKind("TokenRequest"), func() runtime.Object { return &authenticationv1.TokenRequest{} })
	if err != nil {
		return err
	}
	tr := obj.(*authenticationv1.TokenRequest)
	saObj, err := s.getObject(r.Context(), req.res, req.namespace, req.name)
	if err != nil {
		return err
	}
	sa := saObj.(*corev1.ServiceAccount)
	exp := int64(3600)
	if tr.Spec.ExpirationSeconds != nil {
		exp = *tr.Spec.ExpirationSeconds
	}
	if exp < 600 {
		return apierrors.NewInvalid(schema.GroupKind{Group: "authentication.k8s.io", Kind: "TokenRequest"}, req.name,
			fieldErrors("spec.expirationSeconds", exp, "may not specify a duration less than 10 minutes"))
	}
	auds := tr.Spec.Audiences
	if len(auds) == 0 {
		auds = []string{s.issuer}
	}
	now := time.Now()
	claims := saClaims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer: s.issuer, Subject: "system:serviceaccount:" + sa.Namespace + ":" + sa.Name, Audience: auds,
			IssuedAt: jwt.NewNumericDate(now), NotBefore: jwt.NewNumericDate(now), ExpiresAt: jwt.NewNumericDate(now.Add(time.Duration(exp) * time.Second)),
		},
		Kubernetes: k8sClaims{Namespace: sa.Namespace, ServiceAccount: ref{Name: sa.Name, UID: string(sa.UID)}},
	}
	if b := tr.Spec.BoundObjectRef; b != nil {
		switch b.Kind {
		case "Pod", "Secret":
			res := s.reg.get("", "v1", strings.ToLower(b.Kind)+"s")
			bound, err := s.getObject(r.Context(), res, req.namespace, b.Name)
			if err != nil {
				return err
			}
			uid := bound.(metav1.Object).GetUID()
			if b.UID != "" && b.UID != uid {
				return apierrors.NewConflict(res.gvr.GroupResource(), b.Name, fmt.Errorf("the UID in the bound object reference (%s) does not match the UID in record (%s)", b.UID, uid))
			}
			x := &ref{Name: b.Name, UID: string(uid)}
			if b.Kind == "Pod" {
				claims.Kubernetes.Pod = x
			} else {
				claims.Kubernetes.Secret = x
			}
		default:
			return apierrors.NewBadRequest(fmt.Sprintf("cannot bind a token to a %s", b.Kind))
		}
	}
	token, err := jwt.NewWithClaims(jwt.SigningMethodES256, claims).SignedString(s.saKey)
	if err != nil {
		return apierrors.NewInternalError(err)
	}
	tr.Spec.Audiences = auds
	tr.Spec.ExpirationSeconds = &exp
	tr.Status = authenticationv1.TokenRequestStatus{Token: token, ExpirationTimestamp: metav1.NewTime(claims.ExpiresAt.Time)}
	tr.Name, tr.Namespace = sa.Name, sa.Namespace
	tr.CreationTimestamp = metav1.NewTime(now)
	s.writeObject(w, r, http.StatusCreated, tr, authenticationv1.SchemeGroupVersion)
	return nil
}

// serviceAccountUser authenticates a service account token.
func (s *Server) serviceAccountUser(ctx context.Context, token string) (User, bool) {
	if s.saKey == nil || strings.Count(token, ".") != 2 {
		return User{}, false
	}
	var c saClaims
	_, err := jwt.ParseWithClaims(token, &c, func(*jwt.Token) (any, error) { return &s.saKey.PublicKey, nil },
		jwt.WithValidMethods([]string{"ES256"}), jwt.WithIssuer(s.issuer), jwt.WithExpirationRequired())
	if err != nil || !slices.Contains([]string(c.Audience), s.issuer) {
		return User{}, false
	}
	k := c.Kubernetes
	if !s.exists(ctx, "serviceaccounts", k.Namespace, k.ServiceAccount) ||
		k.Pod != nil && !s.exists(ctx, "pods", k.Namespace, *k.Pod) ||
		k.Secret != nil && !s.exists(ctx, "secrets", k.Namespace, *k.Secret) {
		return User{}, false
	}
	return User{Name: "system:serviceaccount:" + k.Namespace + ":" + k.ServiceAccount.Name,
		Groups: []string{"system:serviceaccounts", "system:serviceaccounts:" + k.Namespace}}, true
}

// exists reports whether a core object is still there with the same uid, from the
// watch cache.
func (s *Server) exists(ctx context.Context, plural, ns string, x ref) bool {
	res := s.reg.get("", "v1", plural)
	key := res.key(ns, x.Name)
	lr, err := s.cacher(res).List(ctx, key, storage.ListOptions{})
	if err != nil {
		return false
	}
	for _, kv := range lr.Items {
		if kv.Key != key {
			continue
		}
		obj, err := s.decodeFromStorage(res, kv)
		return err == nil && obj.(metav1.Object).GetUID() == types.UID(x.UID)
	}
	return false
}
