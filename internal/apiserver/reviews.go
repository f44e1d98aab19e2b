package apiserver

import (
	"context"
	"net/http"
	"strings"

	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
)

// The review resources are questions, not objects: they are answered, never stored.
var reviews = map[string]func(s *Server, w http.ResponseWriter, r *http.Request) error{
	"SelfSubjectAccessReview": (*Server).selfSubjectAccessReview,
	"SelfSubjectRulesReview":  (*Server).selfSubjectRulesReview,
	"SelfSubjectReview":       (*Server).selfSubjectReview,
}

// selfSubjectReview answers `kubectl auth whoami`.
func (s *Server) selfSubjectReview(w http.ResponseWriter, r *http.Request) error {
	body, err := readBody(r)
	if err != nil {
		return err
	}
	obj, err := decodeObject(r, body, authenticationv1.SchemeGroupVersion.WithKind("SelfSubjectReview"), func() runtime.Object { return &authenticationv1.SelfSubjectReview{} })
	if err != nil {
		return err
	}
	rev := obj.(*authenticationv1.SelfSubjectReview)
	u := userOf(r.Context())
	rev.Status.UserInfo = authenticationv1.UserInfo{Username: u.Name, Groups: u.Groups}
	s.writeObject(w, r, http.StatusCreated, rev, authenticationv1.SchemeGroupVersion)
	return nil
}

// selfSubjectRulesReview answers `kubectl auth can-i --list`: every rule that applies
// to the caller in a namespace.
func (s *Server) selfSubjectRulesReview(w http.ResponseWriter, r *http.Request) error {
	body, err := readBody(r)
	if err != nil {
		return err
	}
	obj, err := decodeObject(r, body, authorizationv1.SchemeGroupVersion.WithKind("SelfSubjectRulesReview"), func() runtime.Object { return &authorizationv1.SelfSubjectRulesReview{} })
	if err != nil {
		return err
	}
	rev := obj.(*authorizationv1.SelfSubjectRulesReview)
	rules, err := s.rulesFor(r.Context(), userOf(r.Context()), rev.Spec.Namespace)
	if err != nil {
		return err
	}
	for _, rule := range rules {
		if len(rule.NonResourceURLs) > 0 {
			rev.Status.NonResourceRules = append(rev.Status.NonResourceRules, authorizationv1.NonResourceRule{Verbs: rule.Verbs, NonResourceURLs: rule.NonResourceURLs})
		} else {
			rev.Status.ResourceRules = append(rev.Status.ResourceRules, authorizationv1.ResourceRule{Verbs: rule.Verbs, APIGroups: rule.APIGroups, Resources: rule.Resources, ResourceNames: rule.ResourceNames})
		}
	}
	s.writeObject(w, r, http.StatusCreated, rev, authorizationv1.SchemeGroupVersion)
	return nil
}

func (s *Server) rulesFor(ctx context.Context, u User, ns string) ([]rbacv1.PolicyRule, error) {
	for _, g := range u.Groups {
		if g == "system:masters" {
			return []rbacv1.PolicyRule{{Verbs: []string{"*"}, APIGroups: []string{"*"}, Resources: []string{"*"}}, {Verbs: []string{"*"}, NonResourceURLs: []string{"*"}}}, nil
		}
	}
	idx, err := s.rbac(ctx, true)
	if err != nil {
		return nil, err
	}
	var out []rbacv1.PolicyRule
	for _, b := range idx.crbs {
		if bound(b.Subjects, u, "") {
			out = append(out, idx.rules(b.RoleRef, "")...)
		}
	}
	for _, b := range idx.rbs[ns] {
		if bound(b.Subjects, u, b.Namespace) {
			out = append(out, idx.rules(b.RoleRef, b.Namespace)...)
		}
	}
	return out, nil
}

// impersonate applies the Impersonate-User, -Group and -Uid headers (kubectl --as,
// --as-group): the caller must be allowed to "impersonate" each of them, and the
// request then runs as that user.
func (s *Server) impersonate(r *http.Request, u User) (User, error) {
	name := r.Header.Get("Impersonate-User")
	groups := r.Header.Values("Impersonate-Group")
	if name == "" {
		if len(groups) > 0 {
			return u, apierrors.NewBadRequest("requested impersonation of groups without impersonating a user")
		}
		return u, nil
	}
	check := func(a attributes) error {
		ok, err := s.authorize(r.Context(), u, a)
		if err != nil {
			return err
		}
		if !ok {
			return forbidden(u, a)
		}
		return nil
	}
	if sa, ok := strings.CutPrefix(name, "system:serviceaccount:"); ok {
		ns, saName, _ := strings.Cut(sa, ":")
		if err := check(attributes{verb: "impersonate", resource: "serviceaccounts", namespace: ns, name: saName}); err != nil {
			return u, err
		}
		groups = append(groups, "system:serviceaccounts", "system:serviceaccounts:"+ns)
	} else if err := check(attributes{verb: "impersonate", resource: "users", name: name}); err != nil {
		return u, err
	}
	for _, g := range r.Header.Values("Impersonate-Group") {
		if err := check(attributes{verb: "impersonate", resource: "groups", name: g}); err != nil {
			return u, err
		}
	}
	if uid := r.Header.Get("Impersonate-Uid"); uid != "" {
		if err := check(attributes{verb: "impersonate", group: "authentication.k8s.io", resource: "uids", name: uid}); err != nil {
			return u, err
		}
	}
	if name != "system:anonymous" {
		groups = append(groups, "system:authenticated")
	}
	return User{Name: name, Groups: groups}, nil
}
