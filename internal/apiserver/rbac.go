package apiserver

import (
	"context"
	"fmt"
	"net/http"
	"strings"

	authorizationv1 "k8s.io/api/authorization/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// attributes are what an authorization decision is about: a verb on a resource (group,
// resource, subresource, namespace, name) or on a non-resource path.
type attributes struct {
	verb, group, resource, sub, namespace, name string
	path                                        string // non-resource requests only
}

func (a attributes) String() string {
	if a.path != "" {
		return fmt.Sprintf("%s %q", a.verb, a.path)
	}
	r := a.resource
	if a.sub != "" {
		r += "/" + a.sub
	}
	s := fmt.Sprintf("%s resource %q in API group %q", a.verb, r, a.group)
	if a.namespace != "" {
		s += fmt.Sprintf(" in the namespace %q", a.namespace)
	} else if a.resource != "" {
		s += " at the cluster scope"
	}
	return s
}

// verbOf is the RBAC verb of a resource request.
func verbOf(r *http.Request, req request) string {
	q := r.URL.Query()
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		switch {
		case req.name != "":
			return "get"
		case q.Get("watch") == "1" || q.Get("watch") == "true":
			return "watch"
		}
		return "list"
	case http.MethodPost:
		return "create"
	case http.MethodPut:
		return "update"
	case http.MethodPatch:
		return "patch"
	case http.MethodDelete:
		if req.name == "" {
			return "deletecollection"
		}
		return "delete"
	}
	return strings.ToLower(r.Method)
}

// authorize decides with RBAC: members of system:masters may do everything; anyone
// else needs a rule of a (Cluster)Role bound to them, cluster-wide or in the namespace.
func (s *Server) authorize(ctx context.Context, u User, a attributes) (bool, error) {
	for _, g := range u.Groups {
		if g == "system:masters" {
			return true, nil
		}
	}
	ok, err := s.authorizeWith(ctx, u, a, false)
	if ok || err != nil {
		return ok, err
	}
	return s.authorizeWith(ctx, u, a, true)
}

func (s *Server) authorizeWith(ctx context.Context, u User, a attributes, fresh bool) (bool, error) {
	idx, err := s.rbac(ctx, fresh)
	if err != nil {
		return false, err
	}
	allows := func(rules []rbacv1.PolicyRule) bool {
		for _, r := range rules {
			if ruleAllows(r, a) {
				return true
			}
		}
		return false
	}
	for _, b := range idx.crbs {
		if bound(b.Subjects, u, "") && allows(idx.rules(b.RoleRef, "")) {
			return true, nil
		}
	}
	if a.namespace == "" {
		return false, nil
	}
	for _, b := range idx.rbs[a.namespace] {
		if bound(b.Subjects, u, b.Namespace) && allows(idx.rules(b.RoleRef, b.Namespace)) {
			return true, nil
		}
	}
	return false, nil
}

// bound reports whether a binding's subjects name the user (by name, group, or as a
// service account "system:serviceaccount:NS:NAME").
func bound(subjects []rbacv1.Subject, u User, bindingNS string) bool {
	for _, sub := range subjects {
		switch sub.Kind {
		case rbacv1.UserKind:
			if sub.Name == u.Name {
				return true
			}
		case rbacv1.GroupKind:
			for _, g := range u.Groups {
				if g == sub.Name {
					return true
				}
			}
		case rbacv1.ServiceAccountKind:
			ns := sub.Namespace
			if ns == "" {
				ns = bindingNS
			}
			if u.Name == "system:serviceaccount:"+ns+":"+sub.Name {
				return true
			}
		}
	}
	return false
}

// ruleAllows is RBAC's rule matching, a pure function.
func ruleAllows(r rbacv1.PolicyRule, a attributes) bool {
	if !has(r.Verbs, a.verb) {
		return false
	}
	if a.path != "" {
		for _, u := range r.NonResourceURLs {
			if u == "*" || u == a.path || strings.HasSuffix(u, "*") && strings.HasPrefix(a.path, strings.TrimSuffix(u, "*")) {
				return true
			}
		}
		return false
	}
	if !has(r.APIGroups, a.group) {
		return false
	}
	res := a.resource
	if a.sub != "" {
		res += "/" + a.sub
	}
	if !has(r.Resources, res) && !(a.sub != "" && has(r.Resources, a.resource+"/*")) {
		return false
	}
	return len(r.ResourceNames) == 0 || (a.name != "" && contains(r.ResourceNames, a.name))
}

func has(list []string, s string) bool {
	for _, x := range list {
		if x == "*" || x == s {
			return true
		}
	}
	return false
}

// forbidden is the 403 upstream answers, with its wording.
func forbidden(u User, a attributes) error {
	if a.path != "" {
		return apierrors.NewForbidden(schema.GroupResource{}, "", fmt.Errorf("User %q cannot %s", u.Name, a))
	}
	return apierrors.NewForbidden(schema.GroupResource{Group: a.group, Resource: a.resource}, a.name, fmt.Errorf("User %q cannot %s", u.Name, a))
}

// defaultRBAC are the roles and bindings every cluster starts with (a subset of
// upstream's bootstrap policy): cluster-admin for system:masters, discovery and
// self-review for every authenticated user, and the admin/edit/view roles.
func defaultRBAC() []runtime.Object {
	all := rbacv1.PolicyRule{Verbs: []string{"*"}, APIGroups: []string{"*"}, Resources: []string{"*"}}
	read := []string{"get", "list", "watch"}
	write := []string{"create", "update", "patch", "delete", "deletecollection"}
	workloads := rbacv1.PolicyRule{APIGroups: []string{"", "apps", "batch", "autoscaling", "networking.k8s.io", "policy", "discovery.k8s.io"},
		Resources: []string{"pods", "pods/log", "pods/exec", "pods/attach", "pods/portforward", "services", "endpoints", "configmaps", "secrets", "serviceaccounts",
			"persistentvolumeclaims", "events", "deployments", "deployments/scale", "replicasets", "replicasets/scale", "statefulsets", "statefulsets/scale",
			"daemonsets", "jobs", "cronjobs", "horizontalpodautoscalers", "ingresses", "networkpolicies", "poddisruptionbudgets", "endpointslices"}}
	view, edit := workloads, workloads
	// As upstream's view: no secrets, and no sessions into pods.
	view.Resources = nil
	for _, r := range workloads.Resources {
		switch r {
		case "secrets", "pods/exec", "pods/attach", "pods/portforward":
		default:
			view.Resources = append(view.Resources, r)
		}
	}
	view.Verbs = read
	edit.Verbs = append(append([]string{}, read...), write...)
	admin := []rbacv1.PolicyRule{edit, {APIGroups: []string{"rbac.authorization.k8s.io"}, Resources: []string{"roles", "rolebindings"}, Verbs: edit.Verbs}}
	role := func(name string, rules ...rbacv1.PolicyRule) *rbacv1.ClusterRole {
		return &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"kubernetes.io/bootstrapping": "rbac-defaults"}}, Rules: rules}
	}
	bind := func(name, roleName, group string) *rbacv1.ClusterRoleBinding {
		return &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"kubernetes.io/bootstrapping": "rbac-defaults"}},
			RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: roleName},
			Subjects: []rbacv1.Subject{{Kind: rbacv1.GroupKind, APIGroup: rbacv1.GroupName, Name: group}}}
	}
	return []runtime.Object{
		role("cluster-admin", all, rbacv1.PolicyRule{Verbs: []string{"*"}, NonResourceURLs: []string{"*"}}),
		role("system:discovery", rbacv1.PolicyRule{Verbs: []string{"get"}, NonResourceURLs: []string{"/api", "/api/*", "/apis", "/apis/*", "/openapi", "/openapi/*", "/version", "/version/", "/healthz", "/livez", "/readyz"}}),
		role("system:basic-user", rbacv1.PolicyRule{Verbs: []string{"create"}, APIGroups: []string{"authorization.k8s.io"}, Resources: []string{"selfsubjectaccessreviews", "selfsubjectrulesreviews"}},
			rbacv1.PolicyRule{Verbs: []string{"create"}, APIGroups: []string{"authentication.k8s.io"}, Resources: []string{"selfsubjectreviews"}}),
		role("admin", admin...), role("edit", edit), role("view", view),
		role("system:node", nodeRules()...),
		bind("cluster-admin", "cluster-admin", "system:masters"),
		bind("system:discovery", "system:discovery", "system:authenticated"),
		bind("system:basic-user", "system:basic-user", "system:authenticated"),
		bind("system:node", "system:node", "system:nodes"),
	}
}

// nodeRules are what a node's kubelet needs: its Node and Lease, the pods bound to it
// and their status, what those pods mount and refer to, and events.
func nodeRules() []rbacv1.PolicyRule {
	read := []string{"get", "list", "watch"}
	return []rbacv1.PolicyRule{
		{APIGroups: []string{""}, Resources: []string{"nodes"}, Verbs: []string{"get", "list", "watch", "create", "update", "patch", "delete"}},
		{APIGroups: []string{""}, Resources: []string{"nodes/status", "pods/status"}, Verbs: []string{"patch", "update"}},
		{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"get", "list", "watch", "create", "delete"}},
		{APIGroups: []string{""}, Resources: []string{"pods/eviction", "serviceaccounts/token"}, Verbs: []string{"create"}},
		{APIGroups: []string{""}, Resources: []string{"services", "endpoints", "configmaps", "secrets", "persistentvolumeclaims", "persistentvolumes", "namespaces"}, Verbs: read},
		{APIGroups: []string{"discovery.k8s.io"}, Resources: []string{"endpointslices"}, Verbs: read},
		{APIGroups: []string{"", "events.k8s.io"}, Resources: []string{"events"}, Verbs: []string{"create", "update", "patch"}},
		{APIGroups: []string{"coordination.k8s.io"}, Resources: []string{"leases"}, Verbs: []string{"get", "list", "watch", "create", "update", "patch", "delete"}},
		{APIGroups: []string{"storage.k8s.io", "node.k8s.io"}, Resources: []string{"csidrivers", "csinodes", "runtimeclasses", "storageclasses"}, Verbs: read},
	}
}

// selfSubjectAccessReview answers `kubectl auth can-i`: may the caller do this?
func (s *Server) selfSubjectAccessReview(w http.ResponseWriter, r *http.Request) error {
	body, err := readBody(r)
	if err != nil {
		return err
	}
	gvk := authorizationv1.SchemeGroupVersion.WithKind("SelfSubjectAccessReview")
	obj, err := decodeObject(r, body, gvk, func() runtime.Object { return &authorizationv1.SelfSubjectAccessReview{} })
	if err != nil {
		return err
	}
	rev := obj.(*authorizationv1.SelfSubjectAccessReview)
	var a attributes
	switch {
	case rev.Spec.ResourceAttributes != nil:
		ra := rev.Spec.ResourceAttributes
		a = attributes{verb: ra.Verb, group: ra.Group, resource: ra.Resource, sub: ra.Subresource, namespace: ra.Namespace, name: ra.Name}
	case rev.Spec.NonResourceAttributes != nil:
		a = attributes{verb: rev.Spec.NonResourceAttributes.Verb, path: rev.Spec.NonResourceAttributes.Path}
	default:
		return apierrors.NewBadRequest("exactly one of resourceAttributes and nonResourceAttributes must be set")
	}
	u := userOf(r.Context())
	ok, err := s.authorize(r.Context(), u, a)
	if err != nil {
		return err
	}
	rev.Status.Allowed = ok
	s.writeObject(w, r, http.StatusCreated, rev, authorizationv1.SchemeGroupVersion)
	return nil
}
