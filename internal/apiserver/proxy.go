package apiserver

import (
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/util/proxy"

	"github.com/berth-project/berth/internal/apiserver/streamtranslator"
)

// The pod subresources log, exec, attach and portforward are not stored: the API
// server authorizes them and then proxies the request (upgraded or not) to the
// kubelet of the pod's node, at the paths upstream's kubelet serves:
//   /containerLogs/NS/POD/CONTAINER, /exec/NS/POD/CONTAINER, /attach/NS/POD/CONTAINER,
//   /portForward/NS/POD
// with the client's query passed on. The kubelet is found through its Node object:
// the InternalIP address and status.daemonEndpoints.kubeletEndpoint.Port.

// isStream reports whether a pod subresource is proxied to the kubelet.
func isStream(req request) bool {
	if req.res.kind != "Pod" || req.res.gvr.Group != "" {
		return false
	}
	switch req.sub {
	case "log", "exec", "attach", "portforward":
		return true
	}
	return false
}

func (s *Server) proxyToKubelet(w http.ResponseWriter, r *http.Request, req request) error {
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		return apierrors.NewMethodNotSupported(req.res.gvr.GroupResource(), r.Method)
	}
	if req.sub == "log" && r.Method != http.MethodGet {
		return apierrors.NewMethodNotSupported(req.res.gvr.GroupResource(), "create pods/log")
	}
	if s.kubelets == nil {
		return apierrors.NewServiceUnavailable("this server has no way to reach kubelets")
	}
	// A WebSocket upgrade comes as a GET, authorized as "get"; it opens the same session a
	// POST does, so upstream asks for "create" as well (AuthorizePodWebsocketUpgradeCreatePermission).
	if r.Method == http.MethodGet && req.sub != "log" {
		u := userOf(r.Context())
		a := attributes{verb: "create", resource: req.res.gvr.Resource, sub: req.sub, namespace: req.namespace, name: req.name}
		if ok, err := s.authorize(r.Context(), u, a); err != nil {
			return err
		} else if !ok {
			return forbidden(u, a)
		}
	}
	obj, err := s.getObject(r.Context(), req.res, req.namespace, req.name)
	if err != nil {
		return err
	}
	pod := obj.(*corev1.Pod)
	if pod.Spec.NodeName == "" {
		return apierrors.NewBadRequest(fmt.Sprintf("pod %s does not have a host assigned", pod.Name))
	}
	path := "/portForward/" + pod.Namespace + "/" + pod.Name
	if req.sub != "portforward" {
		c, err := podContainer(pod, r.URL.Query().Get("container"), req.sub == "log")
		if err != nil {
			return err
		}
		verb := map[string]string{"log": "containerLogs", "exec": "exec", "attach": "attach"}[req.sub]
		path = "/" + verb + "/" + pod.Namespace + "/" + pod.Name + "/" + c
	}
	host, err := s.kubeletHost(r, pod.Spec.NodeName)
	if err != nil {
		return err
	}
	loc := &url.URL{Scheme: "https", Host: host, Path: path, RawQuery: r.URL.RawQuery}
	r.Header.Del("Authorization") // the kubelet gets our identity, not the user's
	// kubectl 1.30+ asks for a WebSocket first; the kubelet speaks SPDY, so those
	// sessions are translated here. The rest (SPDY, older WebSocket protocols) pass through.
	tr := streamtranslator.Translator{Transport: s.kubelets, Log: s.log}
	switch {
	case (req.sub == "exec" || req.sub == "attach") && streamtranslator.IsRemoteCommand(r):
		tr.ServeRemoteCommand(w, r, loc)
		return nil
	case req.sub == "portforward" && streamtranslator.IsPortForwardTunnel(r):
		return tr.ServePortForward(w, r, loc)
	}
	h := proxy.NewUpgradeAwareHandler(loc, s.kubelets, false, req.sub != "log", proxyResponder{s})
	h.FlushInterval = -1 // logs -f: every line as it comes
	h.ServeHTTP(w, r)
	return nil
}

// podContainer names the container a request is for: the one asked for, or the pod's
// only container. A log request may name an init or ephemeral container too.
func podContainer(pod *corev1.Pod, name string, anyKind bool) (string, error) {
	var names []string
	for _, c := range pod.Spec.Containers {
		names = append(names, c.Name)
	}
	all := append([]string{}, names...)
	for _, c := range pod.Spec.InitContainers {
		all = append(all, c.Name)
	}
	for _, c := range pod.Spec.EphemeralContainers {
		all = append(all, c.Name)
	}
	if name == "" {
		if len(names) == 1 {
			return names[0], nil
		}
		return "", apierrors.NewBadRequest(fmt.Sprintf("a container name must be specified for pod %s, choose one of: %v", pod.Name, names))
	}
	for _, n := range all {
		if n == name {
			return name, nil
		}
	}
	return "", apierrors.NewBadRequest(fmt.Sprintf("container %s is not valid for pod %s", name, pod.Name))
}

// kubeletHost is the address:port of a node's kubelet.
func (s *Server) kubeletHost(r *http.Request, nodeName string) (string, error) {
	obj, err := s.getObject(r.Context(), s.reg.get("", "v1", "nodes"), "", nodeName)
	if err != nil {
		if apierrors.IsNotFound(err) {
			return "", apierrors.NewBadRequest(fmt.Sprintf("node %q of the pod is not known", nodeName))
		}
		return "", err
	}
	node := obj.(*corev1.Node)
	port := int(node.Status.DaemonEndpoints.KubeletEndpoint.Port)
	if port == 0 {
		port = 10250
	}
	var addr string
	for _, t := range []corev1.NodeAddressType{corev1.NodeInternalIP, corev1.NodeExternalIP, corev1.NodeHostName} {
		for _, a := range node.Status.Addresses {
			if a.Type == t && addr == "" {
				addr = a.Address
			}
		}
	}
	if addr == "" {
		return "", apierrors.NewServiceUnavailable(fmt.Sprintf("node %q reports no address", nodeName))
	}
	return net.JoinHostPort(addr, strconv.Itoa(port)), nil
}

// proxyResponder turns a failure to reach the kubelet into a Status.
type proxyResponder struct{ s *Server }

func (p proxyResponder) Error(w http.ResponseWriter, r *http.Request, err error) {
	p.s.log.Debug("kubelet proxy", "path", r.URL.Path, "err", err)
	p.s.writeError(w, r, apierrors.NewServiceUnavailable(fmt.Sprintf("error trying to reach the kubelet: %v", err)))
}
