package apiserver

import (
	"fmt"
	"sort"
	"sync"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/version"
)

// resource is one kind of object the server stores and serves. Every built-in resource
// is one entry of builtins: the generic REST handlers do the rest.
type resource struct {
	gvr        schema.GroupVersionResource
	kind       string
	namespaced bool
	shortNames []string
	categories []string
	// subresources served besides the object itself ("status", "scale", ...).
	subresources []string
	// verbs, when set, replace the usual full set (e.g. bindings can only be created).
	verbs []string
	// custom is set on the resources a CustomResourceDefinition serves: their objects
	// are Unstructured, checked against the CRD's schema (see crd_resource.go).
	custom *customResource
}

func (r *resource) gvk() schema.GroupVersionKind { return r.gvr.GroupVersion().WithKind(r.kind) }

func (r *resource) new() runtime.Object {
	if r.custom != nil {
		return newUnstructured(r.gvk())
	}
	obj, err := scheme.New(r.gvk())
	if err != nil {
		panic(fmt.Sprintf("%s not in the scheme: %v", r.gvk(), err))
	}
	return obj
}

func (r *resource) newList() runtime.Object {
	if r.custom != nil {
		return newUnstructuredList(r.gvr.GroupVersion().WithKind(r.kind + "List"))
	}
	obj, err := scheme.New(r.gvr.GroupVersion().WithKind(r.kind + "List"))
	if err != nil {
		panic(fmt.Sprintf("%sList not in the scheme: %v", r.gvk(), err))
	}
	return obj
}

// storagePrefix is where the objects live in etcd: /registry/GROUP/RESOURCE/ (core
// objects without the group, as kube-apiserver keeps them).
func (r *resource) storagePrefix() string {
	if r.gvr.Group == "" {
		return "/registry/" + r.gvr.Resource + "/"
	}
	return "/registry/" + r.gvr.Group + "/" + r.gvr.Resource + "/"
}

func (r *resource) key(namespace, name string) string {
	if r.namespaced {
		return r.storagePrefix() + namespace + "/" + name
	}
	return r.storagePrefix() + name
}

var allVerbs = []string{"create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"}

func (r *resource) allVerbs() []string {
	if r.verbs != nil {
		return r.verbs
	}
	return allVerbs
}

func res(group, version, plural, kind string, namespaced bool, short []string, cats []string, sub ...string) *resource {
	return &resource{
		gvr: schema.GroupVersionResource{Group: group, Version: version, Resource: plural}, kind: kind,
		namespaced: namespaced, shortNames: short, categories: cats, subresources: sub,
	}
}

var all = []string{"all"}

// builtins are the resources served, in the versions kubectl and client-go use.
var builtins = []*resource{
	res("", "v1", "namespaces", "Namespace", false, []string{"ns"}, nil, "status", "finalize"),
	res("", "v1", "pods", "Pod", true, []string{"po"}, all, "status", "binding", "eviction", "log", "exec", "attach", "portforward", "ephemeralcontainers"),
	res("", "v1", "services", "Service", true, []string{"svc"}, all, "status", "proxy"),
	res("", "v1", "endpoints", "Endpoints", true, []string{"ep"}, nil),
	res("", "v1", "configmaps", "ConfigMap", true, []string{"cm"}, nil),
	res("", "v1", "secrets", "Secret", true, nil, nil),
	res("", "v1", "serviceaccounts", "ServiceAccount", true, []string{"sa"}, nil, "token"),
	res("", "v1", "persistentvolumes", "PersistentVolume", false, []string{"pv"}, nil, "status"),
	res("", "v1", "persistentvolumeclaims", "PersistentVolumeClaim", true, []string{"pvc"}, nil, "status"),
	res("", "v1", "nodes", "Node", false, []string{"no"}, nil, "status", "proxy"),
	res("", "v1", "events", "Event", true, []string{"ev"}, nil),
	res("", "v1", "limitranges", "LimitRange", true, []string{"limits"}, nil),
	res("", "v1", "resourcequotas", "ResourceQuota", true, []string{"quota"}, nil, "status"),
	res("", "v1", "replicationcontrollers", "ReplicationController", true, []string{"rc"}, all, "status", "scale"),
	res("", "v1", "podtemplates", "PodTemplate", true, nil, nil),
	res("apps", "v1", "deployments", "Deployment", true, []string{"deploy"}, all, "status", "scale"),
	res("apps", "v1", "replicasets", "ReplicaSet", true, []string{"rs"}, all, "status", "scale"),
	res("apps", "v1", "statefulsets", "StatefulSet", true, []string{"sts"}, all, "status", "scale"),
	res("apps", "v1", "daemonsets", "DaemonSet", true, []string{"ds"}, all, "status"),
	res("apps", "v1", "controllerrevisions", "ControllerRevision", true, nil, nil),
	res("batch", "v1", "jobs", "Job", true, nil, all, "status"),
	res("batch", "v1", "cronjobs", "CronJob", true, []string{"cj"}, all, "status"),
	res("autoscaling", "v2", "horizontalpodautoscalers", "HorizontalPodAutoscaler", true, []string{"hpa"}, all, "status"),
	res("networking.k8s.io", "v1", "ingresses", "Ingress", true, []string{"ing"}, nil, "status"),
	res("networking.k8s.io", "v1", "ingressclasses", "IngressClass", false, nil, nil),
	res("networking.k8s.io", "v1", "networkpolicies", "NetworkPolicy", true, []string{"netpol"}, nil),
	res("discovery.k8s.io", "v1", "endpointslices", "EndpointSlice", true, nil, nil),
	res("events.k8s.io", "v1", "events", "Event", true, []string{"ev"}, nil),
	res("policy", "v1", "poddisruptionbudgets", "PodDisruptionBudget", true, []string{"pdb"}, nil, "status"),
	res("rbac.authorization.k8s.io", "v1", "roles", "Role", true, nil, nil),
	res("rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding", true, nil, nil),
	res("rbac.authorization.k8s.io", "v1", "clusterroles", "ClusterRole", false, nil, nil),
	res("rbac.authorization.k8s.io", "v1", "clusterrolebindings", "ClusterRoleBinding", false, nil, nil),
	res("coordination.k8s.io", "v1", "leases", "Lease", true, nil, nil),
	res("storage.k8s.io", "v1", "storageclasses", "StorageClass", false, []string{"sc"}, nil),
	res("scheduling.k8s.io", "v1", "priorityclasses", "PriorityClass", false, []string{"pc"}, nil),
	{gvr: schema.GroupVersionResource{Group: "authorization.k8s.io", Version: "v1", Resource: "selfsubjectaccessreviews"}, kind: "SelfSubjectAccessReview", verbs: []string{"create"}},
	{gvr: schema.GroupVersionResource{Group: "authorization.k8s.io", Version: "v1", Resource: "selfsubjectrulesreviews"}, kind: "SelfSubjectRulesReview", verbs: []string{"create"}},
	{gvr: schema.GroupVersionResource{Group: "authentication.k8s.io", Version: "v1", Resource: "selfsubjectreviews"}, kind: "SelfSubjectReview", verbs: []string{"create"}},
	res("apiextensions.k8s.io", "v1", "customresourcedefinitions", "CustomResourceDefinition", false, []string{"crd", "crds"}, nil, "status"),
}

// registry finds resources by group, version and plural name. Custom resources come
// and go with their CRDs, so it is safe for concurrent use.
type registry struct {
	mu    sync.RWMutex
	byGVR map[schema.GroupVersionResource]*resource
}

func newRegistry(rs []*resource) *registry {
	r := &registry{byGVR: map[schema.GroupVersionResource]*resource{}}
	for _, x := range rs {
		if _, err := scheme.New(x.gvk()); err != nil {
			continue // not in this k8s.io/api (e.g. CRDs are served only with their types)
		}
		r.byGVR[x.gvr] = x
	}
	return r
}

func (r *registry) get(group, version, plural string) *resource {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.byGVR[schema.GroupVersionResource{Group: group, Version: version, Resource: plural}]
}

// groups lists the served group versions, core ("") first, then by name.
func (r *registry) groups() []schema.GroupVersion {
	r.mu.RLock()
	defer r.mu.RUnlock()
	seen := map[schema.GroupVersion]bool{}
	var out []schema.GroupVersion
	for gvr := range r.byGVR {
		gv := gvr.GroupVersion()
		if !seen[gv] {
			seen[gv] = true
			out = append(out, gv)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if (out[i].Group == "") != (out[j].Group == "") {
			return out[i].Group == ""
		}
		if out[i].Group != out[j].Group {
			return out[i].Group < out[j].Group
		}
		// Within a group, lowest priority first (v1alpha1, v1beta1, v1, v2): discovery
		// prefers the last.
		return version.CompareKubeAwareVersionStrings(out[i].Version, out[j].Version) < 0
	})
	return out
}

// in lists the resources of one group version, by name.
func (r *registry) in(gv schema.GroupVersion) []*resource {
	r.mu.RLock()
	defer r.mu.RUnlock()
	var out []*resource
	for gvr, x := range r.byGVR {
		if gvr.GroupVersion() == gv {
			out = append(out, x)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].gvr.Resource < out[j].gvr.Resource })
	return out
}

// all lists every resource served.
func (r *registry) all() []*resource {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make([]*resource, 0, len(r.byGVR))
	for _, x := range r.byGVR {
		out = append(out, x)
	}
	return out
}

// replace swaps the resources of one group and resource name (a CRD's versions) for rs.
func (r *registry) replace(gr schema.GroupResource, rs []*resource) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for gvr := range r.byGVR {
		if gvr.GroupResource() == gr {
			delete(r.byGVR, gvr)
		}
	}
	for _, x := range rs {
		r.byGVR[x.gvr] = x
	}
}
