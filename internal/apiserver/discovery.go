package apiserver

import (
	"net/http"
	"strings"

	apidiscoveryv2 "k8s.io/api/apidiscovery/v2"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// subresourceKind says what a subresource accepts and returns, and its verbs.
func subresourceInfo(r *resource, sub string) (gvk schema.GroupVersionKind, verbs []string) {
	self := r.gvk()
	switch sub {
	case "status":
		return self, []string{"get", "patch", "update"}
	case "scale":
		return schema.GroupVersionKind{Group: "autoscaling", Version: "v1", Kind: "Scale"}, []string{"get", "patch", "update"}
	case "binding":
		return schema.GroupVersionKind{Version: "v1", Kind: "Binding"}, []string{"create"}
	case "eviction":
		return schema.GroupVersionKind{Group: "policy", Version: "v1", Kind: "Eviction"}, []string{"create"}
	case "log":
		return schema.GroupVersionKind{Version: "v1", Kind: "Pod"}, []string{"get"}
	case "exec", "attach", "portforward":
		kinds := map[string]string{"exec": "PodExecOptions", "attach": "PodAttachOptions", "portforward": "PodPortForwardOptions"}
		return schema.GroupVersionKind{Version: "v1", Kind: kinds[sub]}, []string{"create", "get"}
	case "token":
		return schema.GroupVersionKind{Group: "authentication.k8s.io", Version: "v1", Kind: "TokenRequest"}, []string{"create"}
	case "finalize":
		return self, []string{"update"}
	case "ephemeralcontainers":
		return self, []string{"get", "patch", "update"}
	case "proxy":
		return schema.GroupVersionKind{Version: "v1", Kind: r.kind + "ProxyOptions"}, []string{"create", "delete", "get", "head", "options", "patch", "update"}
	}
	return self, []string{"get"}
}

// apiResources is the legacy discovery list of one group version.
func (s *Server) apiResources(gv schema.GroupVersion) *metav1.APIResourceList {
	out := &metav1.APIResourceList{GroupVersion: gv.String()}
	for _, r := range s.reg.in(gv) {
		out.APIResources = append(out.APIResources, metav1.APIResource{
			Name: r.gvr.Resource, SingularName: strings.ToLower(r.kind), Namespaced: r.namespaced,
			Kind: r.kind, Verbs: r.allVerbs(), ShortNames: r.shortNames, Categories: r.categories,
		})
		for _, sub := range r.subresources {
			gvk, verbs := subresourceInfo(r, sub)
			ar := metav1.APIResource{Name: r.gvr.Resource + "/" + sub, Namespaced: r.namespaced, Kind: gvk.Kind, Verbs: verbs}
			if gvk.GroupVersion() != gv {
				ar.Group, ar.Version = gvk.Group, gvk.Version
			}
			out.APIResources = append(out.APIResources, ar)
		}
	}
	out.Kind, out.APIVersion = "APIResourceList", "v1"
	return out
}

func (s *Server) apiGroups() *metav1.APIGroupList {
	list := &metav1.APIGroupList{TypeMeta: metav1.TypeMeta{Kind: "APIGroupList", APIVersion: "v1"}}
	index := map[string]int{}
	for _, gv := range s.reg.groups() {
		if gv.Group == "" {
			continue
		}
		i, ok := index[gv.Group]
		if !ok {
			list.Groups = append(list.Groups, metav1.APIGroup{Name: gv.Group})
			i = len(list.Groups) - 1
			index[gv.Group] = i
		}
		v := metav1.GroupVersionForDiscovery{GroupVersion: gv.String(), Version: gv.Version}
		list.Groups[i].Versions = append(list.Groups[i].Versions, v)
		list.Groups[i].PreferredVersion = v
	}
	return list
}

// apiGroup is the discovery document of one group.
func (s *Server) apiGroup(name string) *metav1.APIGroup {
	for _, g := range s.apiGroups().Groups {
		if g.Name == name {
			g.Kind, g.APIVersion = "APIGroup", "v1"
			return &g
		}
	}
	return nil
}

// aggregated is discovery v2: every group, version and resource in one answer, for
// "/api" (core) or "/apis" (the rest).
func (s *Server) aggregated(core bool) *apidiscoveryv2.APIGroupDiscoveryList {
	out := &apidiscoveryv2.APIGroupDiscoveryList{TypeMeta: metav1.TypeMeta{Kind: "APIGroupDiscoveryList", APIVersion: "apidiscovery.k8s.io/v2"}}
	index := map[string]int{}
	for _, gv := range s.reg.groups() {
		if (gv.Group == "") != core {
			continue
		}
		i, ok := index[gv.Group]
		if !ok {
			out.Items = append(out.Items, apidiscoveryv2.APIGroupDiscovery{ObjectMeta: metav1.ObjectMeta{Name: gv.Group}})
			i = len(out.Items) - 1
			index[gv.Group] = i
		}
		v := apidiscoveryv2.APIVersionDiscovery{Version: gv.Version, Freshness: apidiscoveryv2.DiscoveryFreshnessCurrent}
		for _, r := range s.reg.in(gv) {
			scope := apidiscoveryv2.ScopeCluster
			if r.namespaced {
				scope = apidiscoveryv2.ScopeNamespace
			}
			gvk := r.gvk()
			d := apidiscoveryv2.APIResourceDiscovery{
				Resource: r.gvr.Resource, SingularResource: strings.ToLower(r.kind), Scope: scope,
				ResponseKind: &metav1.GroupVersionKind{Group: gvk.Group, Version: gvk.Version, Kind: gvk.Kind},
				Verbs:        r.allVerbs(), ShortNames: r.shortNames, Categories: r.categories,
			}
			for _, sub := range r.subresources {
				sgvk, verbs := subresourceInfo(r, sub)
				d.Subresources = append(d.Subresources, apidiscoveryv2.APISubresourceDiscovery{
					Subresource: sub, Verbs: verbs,
					ResponseKind: &metav1.GroupVersionKind{Group: sgvk.Group, Version: sgvk.Version, Kind: sgvk.Kind},
				})
			}
			v.Resources = append(v.Resources, d)
		}
		// Newest version first, as kube-apiserver lists them.
		out.Items[i].Versions = append([]apidiscoveryv2.APIVersionDiscovery{v}, out.Items[i].Versions...)
	}
	return out
}

// wantsAggregated reports whether the client asked for discovery v2.
func wantsAggregated(r *http.Request) bool {
	for _, part := range strings.Split(r.Header.Get("Accept"), ",") {
		if strings.Contains(part, "as=APIGroupDiscoveryList") && strings.Contains(part, "v=v2") && !strings.Contains(part, "v=v2beta1") {
			return true
		}
	}
	return false
}

const aggregatedMediaType = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"

func (s *Server) serveAPI(w http.ResponseWriter, r *http.Request) {
	if wantsAggregated(r) {
		s.writeRaw(w, r, http.StatusOK, aggregatedMediaType, s.aggregated(true))
		return
	}
	s.writeRaw(w, r, http.StatusOK, "application/json", &metav1.APIVersions{
		TypeMeta: metav1.TypeMeta{Kind: "APIVersions"}, Versions: []string{"v1"},
		ServerAddressByClientCIDRs: []metav1.ServerAddressByClientCIDR{{ClientCIDR: "0.0.0.0/0", ServerAddress: r.Host}},
	})
}

func (s *Server) serveAPIs(w http.ResponseWriter, r *http.Request) {
	if wantsAggregated(r) {
		s.writeRaw(w, r, http.StatusOK, aggregatedMediaType, s.aggregated(false))
		return
	}
	s.writeRaw(w, r, http.StatusOK, "application/json", s.apiGroups())
}
