package apiserver

import (
	"context"
	"sync"

	rbacv1 "k8s.io/api/rbac/v1"

	"github.com/berth-project/berth/internal/storage"
)

// rbacIndex is every Role, ClusterRole and binding, decoded, as of the watch caches'
// revisions: authorization of a request reads memory only, and the index is rebuilt
// when one of the four caches has moved on.
type rbacIndex struct {
	revs         [4]int64
	clusterRoles map[string][]rbacv1.PolicyRule
	roles        map[string][]rbacv1.PolicyRule // "NS/NAME"
	crbs         []*rbacv1.ClusterRoleBinding
	rbs          map[string][]*rbacv1.RoleBinding // by namespace
}

type rbacCache struct {
	mu  sync.Mutex
	cur *rbacIndex
}

// rbac returns an index as new as the watch caches; fresh: as new as etcd (a consistent
// list), which is what a request that would be denied gets, so that a binding made just
// before is never missed.
func (s *Server) rbac(ctx context.Context, fresh bool) (*rbacIndex, error) {
	kinds := [4]*resource{
		s.reg.get("rbac.authorization.k8s.io", "v1", "clusterroles"),
		s.reg.get("rbac.authorization.k8s.io", "v1", "roles"),
		s.reg.get("rbac.authorization.k8s.io", "v1", "clusterrolebindings"),
		s.reg.get("rbac.authorization.k8s.io", "v1", "rolebindings"),
	}
	var lists [4]storage.ListResult
	var revs [4]int64
	for i, res := range kinds {
		c := s.cacher(res)
		if err := c.WaitReady(ctx); err != nil {
			return nil, err
		}
		revs[i] = c.Revision()
	}
	s.rbacCache.mu.Lock()
	defer s.rbacCache.mu.Unlock()
	if cur := s.rbacCache.cur; cur != nil && cur.revs == revs && !fresh {
		return cur, nil
	}
	for i, res := range kinds {
		l, err := s.cacher(res).List(ctx, res.storagePrefix(), storage.ListOptions{})
		if err != nil {
			return nil, err
		}
		lists[i] = l
		revs[i] = max(revs[i], l.Revision)
	}
	if cur := s.rbacCache.cur; cur != nil && cur.revs == revs {
		return cur, nil
	}
	idx := &rbacIndex{revs: revs, clusterRoles: map[string][]rbacv1.PolicyRule{}, roles: map[string][]rbacv1.PolicyRule{}, rbs: map[string][]*rbacv1.RoleBinding{}}
	for i, l := range lists {
		for _, kv := range l.Items {
			obj, err := s.decodeFromStorage(kinds[i], kv)
			if err != nil {
				continue
			}
			switch o := obj.(type) {
			case *rbacv1.ClusterRole:
				idx.clusterRoles[o.Name] = o.Rules
			case *rbacv1.Role:
				idx.roles[o.Namespace+"/"+o.Name] = o.Rules
			case *rbacv1.ClusterRoleBinding:
				idx.crbs = append(idx.crbs, o)
			case *rbacv1.RoleBinding:
				idx.rbs[o.Namespace] = append(idx.rbs[o.Namespace], o)
			}
		}
	}
	s.rbacCache.cur = idx
	return idx, nil
}

// rules are the rules a role reference grants (none if the role does not exist).
func (x *rbacIndex) rules(ref rbacv1.RoleRef, ns string) []rbacv1.PolicyRule {
	if ref.Kind == "ClusterRole" {
		return x.clusterRoles[ref.Name]
	}
	return x.roles[ns+"/"+ref.Name]
}
