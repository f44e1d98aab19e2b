package endpointslice

import (
	"fmt"
	"net"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/berth-project/berth/internal/controller/pods"
)

// Group is a Service's endpoints that share one port mapping (a named target port
// can resolve to different numbers in different pods).
type Group struct {
	Ports     []discoveryv1.EndpointPort
	Endpoints []discoveryv1.Endpoint
}

// key identifies a port mapping.
func portsKey(ports []discoveryv1.EndpointPort) string {
	var b strings.Builder
	for _, p := range ports {
		fmt.Fprintf(&b, "%s/%s/%d;", deref(p.Name), deref((*string)(p.Protocol)), deref(p.Port))
	}
	return b.String()
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}

// addressType is the family of the Service's slices: its first IP family, IPv4
// unless it says IPv6.
func addressType(svc *corev1.Service) discoveryv1.AddressType {
	if len(svc.Spec.IPFamilies) > 0 && svc.Spec.IPFamilies[0] == corev1.IPv6Protocol {
		return discoveryv1.AddressTypeIPv6
	}
	return discoveryv1.AddressTypeIPv4
}

// podIP is the pod's address of the given family, or "".
func podIP(p *corev1.Pod, family discoveryv1.AddressType) string {
	ips := []string{p.Status.PodIP}
	for _, x := range p.Status.PodIPs {
		ips = append(ips, x.IP)
	}
	for _, s := range ips {
		ip := net.ParseIP(s)
		if ip == nil {
			continue
		}
		if (ip.To4() != nil) == (family == discoveryv1.AddressTypeIPv4) {
			return s
		}
	}
	return ""
}

// Desired groups the endpoints a Service should have: one per selected pod with an
// address that has not finished, ready when the pod is (or the Service publishes
// not-ready addresses) and not terminating; ports resolved against the pod's
// containers. Groups and endpoints are sorted, so equal inputs give equal output.
func Desired(svc *corev1.Service, selected []*corev1.Pod) []Group {
	family := addressType(svc)
	groups := map[string]*Group{}
	for _, p := range selected {
		ip := podIP(p, family)
		if ip == "" || p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
			continue
		}
		ports := endpointPorts(svc, p)
		k := portsKey(ports)
		g, ok := groups[k]
		if !ok {
			g = &Group{Ports: ports}
			groups[k] = g
		}
		g.Endpoints = append(g.Endpoints, endpoint(svc, p, ip))
	}
	keys := make([]string, 0, len(groups))
	for k := range groups {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := make([]Group, 0, len(keys))
	for _, k := range keys {
		g := groups[k]
		sort.Slice(g.Endpoints, func(i, j int) bool { return g.Endpoints[i].Addresses[0] < g.Endpoints[j].Addresses[0] })
		out = append(out, *g)
	}
	return out
}

func endpoint(svc *corev1.Service, p *corev1.Pod, ip string) discoveryv1.Endpoint {
	ready := pods.Ready(p)
	terminating := p.DeletionTimestamp != nil
	publish := svc.Spec.PublishNotReadyAddresses
	ep := discoveryv1.Endpoint{
		Addresses: []string{ip},
		Conditions: discoveryv1.EndpointConditions{
			Ready: ptr(publish || (ready && !terminating)), Serving: ptr(publish || ready), Terminating: ptr(terminating),
		},
		TargetRef: &corev1.ObjectReference{Kind: "Pod", Namespace: p.Namespace, Name: p.Name, UID: p.UID},
	}
	if p.Spec.NodeName != "" {
		ep.NodeName = ptr(p.Spec.NodeName)
	}
	if p.Spec.Hostname != "" && p.Spec.Subdomain == svc.Name {
		ep.Hostname = ptr(p.Spec.Hostname)
	}
	return ep
}

func ptr[T any](v T) *T { return &v }

// endpointPorts resolves the Service's ports for one pod; a named target port the
// pod does not have is left out for that pod.
func endpointPorts(svc *corev1.Service, p *corev1.Pod) []discoveryv1.EndpointPort {
	out := []discoveryv1.EndpointPort{}
	for _, sp := range svc.Spec.Ports {
		n, ok := targetPort(sp, p)
		if !ok {
			continue
		}
		out = append(out, discoveryv1.EndpointPort{Name: ptr(sp.Name), Protocol: ptr(sp.Protocol), Port: ptr(n), AppProtocol: sp.AppProtocol})
	}
	return out
}

func targetPort(sp corev1.ServicePort, p *corev1.Pod) (int32, bool) {
	tp := sp.TargetPort
	switch {
	case tp.Type == intstr.String && tp.StrVal != "":
		for _, c := range p.Spec.Containers {
			for _, cp := range c.Ports {
				proto := cp.Protocol
				if proto == "" {
					proto = corev1.ProtocolTCP
				}
				if cp.Name == tp.StrVal && proto == sp.Protocol {
					return cp.ContainerPort, true
				}
			}
		}
		return 0, false
	case tp.Type == intstr.Int && tp.IntVal != 0:
		return tp.IntVal, true
	}
	return sp.Port, true
}
