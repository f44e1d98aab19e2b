package apiserver

import (
	"net/http"
	"strings"

	autoscalingv1 "k8s.io/api/autoscaling/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/kube-openapi/pkg/common"
	"k8s.io/kube-openapi/pkg/util"
)

// The OpenAPI paths of a group version, as kube-openapi's builders take them: one route
// per verb of every resource (and of its status and scale), with the parameters and
// extensions kubectl reads. kubectl checks that a kind's PATCH takes fieldValidation
// before it leaves validation to the server, and finds kinds by
// x-kubernetes-group-version-kind.

// model stands for a type in the OpenAPI definitions by its model name
// ("io.k8s.api.core.v1.Pod"), so custom resources can be named as well as Go types.
type model string

func (m model) OpenAPIModelName() string { return string(m) }

// modelName is the OpenAPI name of a resource's kind (list: its list kind).
func modelName(r *resource, list bool) model {
	if r.custom != nil {
		n := customModelName(r.gvk())
		if list {
			n += "List"
		}
		return model(n)
	}
	if list {
		return model(util.GetCanonicalTypeName(r.newList()))
	}
	return model(util.GetCanonicalTypeName(r.new()))
}

type param struct {
	name, desc, typ string
	kind            common.ParameterKind
	required        bool
}

func (p param) Name() string               { return p.name }
func (p param) Description() string        { return p.desc }
func (p param) Required() bool             { return p.required }
func (p param) Kind() common.ParameterKind { return p.kind }
func (p param) DataType() string           { return p.typ }
func (p param) AllowMultiple() bool        { return false }
func query(name, typ, desc string) param {
	return param{name: name, typ: typ, desc: desc, kind: common.QueryParameterKind}
}
func pathParam(name, desc string) param {
	return param{name: name, typ: "string", desc: desc, kind: common.PathParameterKind, required: true}
}
func bodyParam() param {
	return param{name: "body", typ: "object", kind: common.BodyParameterKind, required: true}
}
func (r route) StatusCodeResponses() []common.StatusCodeResponse { return r.codes }

var (
	pDryRun          = query("dryRun", "string", "When present, indicates that modifications should not be persisted. Valid values are: - All: all dry run stages will be processed")
	pFieldManager    = query("fieldManager", "string", "fieldManager is a name associated with the actor or entity that is making these changes.")
	pFieldValidation = query("fieldValidation", "string", "fieldValidation instructs the server on how to handle objects in the request (POST/PUT/PATCH) containing unknown or duplicate fields. Valid values are: - Ignore - Warn - Strict")
	pForce           = query("force", "boolean", "Force is going to \"force\" Apply requests. It means user will re-acquire conflicting fields owned by other people.")
	pPretty          = query("pretty", "string", "If 'true', then the output is pretty printed.")
	pGrace           = query("gracePeriodSeconds", "integer", "The duration in seconds before the object should be deleted.")
	pPropagation     = query("propagationPolicy", "string", "Whether and how garbage collection will be performed: 'Orphan', 'Background' or 'Foreground'.")
	listParams       = []common.Parameter{
		query("allowWatchBookmarks", "boolean", "allowWatchBookmarks requests watch events with type \"BOOKMARK\"."),
		query("continue", "string", "The continue option should be set when retrieving more results from the server."),
		query("fieldSelector", "string", "A selector to restrict the list of returned objects by their fields."),
		query("labelSelector", "string", "A selector to restrict the list of returned objects by their labels."),
		query("limit", "integer", "limit is a maximum number of responses to return for a list call."),
		query("resourceVersion", "string", "resourceVersion sets a constraint on what resource versions a request may be served from."),
		query("timeoutSeconds", "integer", "Timeout for the list/watch call."),
		query("watch", "boolean", "Watch for changes to the described resources and return them as a stream of add, update, and remove notifications."),
	}
)

type status struct {
	code  int
	msg   string
	model any
}

func (s status) Code() int       { return s.code }
func (s status) Message() string { return s.msg }
func (s status) Model() any      { return s.model }

type route struct {
	method, path, op string
	params           []common.Parameter
	consumes         []string
	meta             map[string]any
	body             any
	codes            []common.StatusCodeResponse
}

func (r route) Method() string                 { return r.method }
func (r route) Path() string                   { return r.path }
func (r route) OperationName() string          { return r.op }
func (r route) Parameters() []common.Parameter { return r.params }
func (r route) Description() string            { return "" }
func (r route) Consumes() []string             { return r.consumes }
func (r route) Produces() []string {
	return []string{"application/json", "application/yaml", "application/vnd.kubernetes.protobuf"}
}
func (r route) Metadata() map[string]any   { return r.meta }
func (r route) RequestPayloadSample() any  { return r.body }
func (r route) ResponsePayloadSample() any { return nil }

type routes struct {
	root   string
	routes []common.Route
}

func (c routes) RootPath() string                   { return c.root }
func (c routes) PathParameters() []common.Parameter { return nil }
func (c routes) Routes() []common.Route             { return c.routes }

// operationPrefix is the part of upstream's operation IDs naming the group version:
// "CoreV1", "AppsV1", "RbacAuthorizationV1".
func operationPrefix(gv schema.GroupVersion) string {
	g := strings.TrimSuffix(gv.Group, ".k8s.io")
	if g == "" {
		g = "core"
	}
	var b strings.Builder
	for _, part := range strings.FieldsFunc(g, func(r rune) bool { return r == '.' || r == '-' }) {
		b.WriteString(strings.ToUpper(part[:1]) + part[1:])
	}
	return b.String() + strings.ToUpper(gv.Version[:1]) + gv.Version[1:]
}

// openAPIRoutes are the routes of one group version's resources.
func openAPIRoutes(rs []*resource, gv schema.GroupVersion) routes {
	c := routes{root: "/" + gvPath(gv)}
	prefix := operationPrefix(gv)
	for _, r := range rs {
		if _, ok := reviews[r.kind]; ok {
			continue // questions answered, not objects: no paths of their own
		}
		obj, list := modelName(r, false), modelName(r, true)
		gvk := map[string]any{"group": r.gvr.Group, "version": r.gvr.Version, "kind": r.kind}
		base, scope, nsParams := c.root+"/", "", []common.Parameter(nil)
		if r.namespaced {
			base, scope = base+"namespaces/{namespace}/", "Namespaced"
			nsParams = []common.Parameter{pathParam("namespace", "object name and auth scope, such as for teams and projects")}
		}
		add := func(method, path, verb, action, suffix string, params []common.Parameter, consumes []string, body any, codes ...status) {
			ps := append(append([]common.Parameter{pPretty}, nsParams...), params...)
			if strings.Contains(path, "{name}") {
				ps = append(ps, pathParam("name", "name of the "+r.kind))
			}
			if body != nil {
				ps = append(ps, bodyParam())
			}
			var cs []common.StatusCodeResponse
			for _, s := range codes {
				cs = append(cs, s)
			}
			meta := map[string]any{"x-kubernetes-action": action, "x-kubernetes-group-version-kind": gvk}
			c.routes = append(c.routes, route{method: method, path: path, op: verb + prefix + scope + r.kind + suffix,
				params: ps, consumes: consumes, meta: meta, body: body, codes: cs})
		}
		write := []common.Parameter{pDryRun, pFieldManager, pFieldValidation}
		patchTypes := []string{string(types.JSONPatchType), string(types.MergePatchType), string(types.StrategicMergePatchType), string(types.ApplyYAMLPatchType)}
		if r.custom != nil {
			// No strategic merge patches of custom resources: kubectl apply reads this
			// list to choose between a strategic and a JSON merge patch.
			patchTypes = []string{string(types.JSONPatchType), string(types.MergePatchType), string(types.ApplyYAMLPatchType)}
		}
		ok, created := status{http.StatusOK, "OK", obj}, status{http.StatusCreated, "Created", obj}
		coll, item := base+r.gvr.Resource, base+r.gvr.Resource+"/{name}"
		verbs := r.allVerbs()
		if contains(verbs, "list") {
			add(http.MethodGet, coll, "list", "list", "", listParams, nil, nil, status{http.StatusOK, "OK", list})
		}
		if contains(verbs, "create") {
			add(http.MethodPost, coll, "create", "post", "", write, []string{"*/*"}, obj, ok, created, status{http.StatusAccepted, "Accepted", obj})
		}
		if contains(verbs, "deletecollection") {
			add(http.MethodDelete, coll, "deletecollection", "deletecollection", "", append([]common.Parameter{pDryRun, pGrace, pPropagation}, listParams...),
				[]string{"*/*"}, &metav1.DeleteOptions{}, status{http.StatusOK, "OK", &metav1.Status{}})
		}
		if contains(verbs, "get") {
			add(http.MethodGet, item, "read", "get", "", nil, nil, nil, ok)
		}
		if contains(verbs, "update") {
			add(http.MethodPut, item, "replace", "put", "", write, []string{"*/*"}, obj, ok, created)
		}
		if contains(verbs, "patch") {
			add(http.MethodPatch, item, "patch", "patch", "", append(write, pForce), patchTypes, &metav1.Patch{}, ok, created)
		}
		if contains(verbs, "delete") {
			add(http.MethodDelete, item, "delete", "delete", "", []common.Parameter{pDryRun, pGrace, pPropagation}, []string{"*/*"},
				&metav1.DeleteOptions{}, status{http.StatusOK, "OK", obj}, status{http.StatusAccepted, "Accepted", obj})
		}
		own := gvk
		for _, sub := range r.subresources {
			var m any
			switch sub {
			case "status":
				m, gvk = obj, own
			case "scale":
				m = &autoscalingv1.Scale{}
				gvk = map[string]any{"group": "autoscaling", "version": "v1", "kind": "Scale"}
			default:
				continue
			}
			suffix, p := strings.ToUpper(sub[:1])+sub[1:], item+"/"+sub
			st := status{http.StatusOK, "OK", m}
			add(http.MethodGet, p, "read", "get", suffix, nil, nil, nil, st)
			add(http.MethodPut, p, "replace", "put", suffix, write, []string{"*/*"}, m, st, status{http.StatusCreated, "Created", m})
			add(http.MethodPatch, p, "patch", "patch", suffix, append(write, pForce), patchTypes, &metav1.Patch{}, st, status{http.StatusCreated, "Created", m})
		}
	}
	return c
}
