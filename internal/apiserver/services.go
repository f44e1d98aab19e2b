package apiserver

import (
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"net"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/berth-project/berth/internal/storage"
)

// Services get their cluster IP from the service range and their node ports from the
// node-port range when created, as upstream allocates them: a requested address or port
// must be in range and free; an update keeps what was allocated (clients that apply a
// manifest without spec.clusterIP do not lose it) and refuses to change it.
//
// What is in use is read from the stored Services (the watch cache), plus what this
// server handed out in the last minute and may not be stored yet. That is enough for
// one API server; several servers on one etcd would need a stored allocation map.

type allocator struct {
	cidr      *net.IPNet
	portBase  int
	portSize  int
	mu        sync.Mutex
	recentIP  map[string]time.Time
	recentPrt map[int32]time.Time
}

func newAllocator(cidr *net.IPNet, ports [2]int) *allocator {
	return &allocator{cidr: cidr, portBase: ports[0], portSize: ports[1] - ports[0] + 1,
		recentIP: map[string]time.Time{}, recentPrt: map[int32]time.Time{}}
}

// firstIP is the range's first usable address: the kubernetes Service's.
func (a *allocator) firstIP() net.IP { return a.nth(1) }

func (a *allocator) nth(n uint32) net.IP {
	base := binary.BigEndian.Uint32(a.cidr.IP.To4())
	ip := make(net.IP, 4)
	binary.BigEndian.PutUint32(ip, base+n)
	return ip
}

func (a *allocator) size() uint32 {
	ones, bits := a.cidr.Mask.Size()
	return 1 << uint(bits-ones)
}

// inUse lists the cluster IPs and node ports of the stored Services.
func (s *Server) servicesInUse(ctx context.Context, except *corev1.Service) (map[string]bool, map[int32]bool, error) {
	res := s.reg.get("", "v1", "services")
	lr, err := s.cacher(res).List(ctx, res.storagePrefix(), storage.ListOptions{})
	if err != nil {
		return nil, nil, err
	}
	ips, ports := map[string]bool{}, map[int32]bool{}
	for _, kv := range lr.Items {
		obj, err := s.decodeFromStorage(res, kv)
		if err != nil {
			continue
		}
		svc := obj.(*corev1.Service)
		if except != nil && svc.UID == except.UID {
			continue
		}
		for _, ip := range svc.Spec.ClusterIPs {
			ips[ip] = true
		}
		ips[svc.Spec.ClusterIP] = true
		for _, p := range svc.Spec.Ports {
			if p.NodePort != 0 {
				ports[p.NodePort] = true
			}
		}
	}
	return ips, ports, nil
}

// allocateService fills in a Service's cluster IP and node ports (old: the stored
// Service on an update, nil on create).
func (s *Server) allocateService(ctx context.Context, svc, old *corev1.Service) error {
	a := s.alloc
	if a == nil {
		return nil
	}
	if old != nil {
		if svc.Spec.ClusterIP == "" {
			svc.Spec.ClusterIP, svc.Spec.ClusterIPs = old.Spec.ClusterIP, old.Spec.ClusterIPs
		}
		if svc.Spec.ClusterIP != old.Spec.ClusterIP && old.Spec.Type == svc.Spec.Type && old.Spec.ClusterIP != "" {
			return invalid("Service", svc.Name, field.ErrorList{field.Invalid(field.NewPath("spec", "clusterIPs").Index(0), svc.Spec.ClusterIP, "may not change once set")})
		}
		for i := range svc.Spec.Ports {
			for _, op := range old.Spec.Ports {
				if svc.Spec.Ports[i].NodePort == 0 && op.Port == svc.Spec.Ports[i].Port && op.Protocol == svc.Spec.Ports[i].Protocol {
					svc.Spec.Ports[i].NodePort = op.NodePort
				}
			}
		}
	}
	ips, ports, err := s.servicesInUse(ctx, svc)
	if err != nil {
		return err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	now := time.Now()
	for ip, t := range a.recentIP {
		if now.Sub(t) > time.Minute {
			delete(a.recentIP, ip)
		} else {
			ips[ip] = true
		}
	}
	for p, t := range a.recentPrt {
		if now.Sub(t) > time.Minute {
			delete(a.recentPrt, p)
		} else {
			ports[p] = true
		}
	}
	if svc.Spec.Type != corev1.ServiceTypeExternalName && svc.Spec.ClusterIP != corev1.ClusterIPNone {
		switch {
		case svc.Spec.ClusterIP == "":
			ip, err := a.freeIP(ips)
			if err != nil {
				return err
			}
			svc.Spec.ClusterIP = ip
		case old == nil || svc.Spec.ClusterIP != old.Spec.ClusterIP:
			ip := net.ParseIP(svc.Spec.ClusterIP)
			path := field.NewPath("spec", "clusterIPs").Index(0)
			if ip == nil || !a.cidr.Contains(ip) {
				return invalid("Service", svc.Name, field.ErrorList{field.Invalid(path, svc.Spec.ClusterIP, fmt.Sprintf("failed to allocate IP %s: provided IP is not in the valid range. The range of valid IPs is %s", svc.Spec.ClusterIP, a.cidr))})
			}
			if ips[ip.String()] {
				return invalid("Service", svc.Name, field.ErrorList{field.Invalid(path, svc.Spec.ClusterIP, fmt.Sprintf("failed to allocate IP %s: provided IP is already allocated", svc.Spec.ClusterIP))})
			}
		}
		svc.Spec.ClusterIPs = []string{svc.Spec.ClusterIP}
		a.recentIP[svc.Spec.ClusterIP] = now
		if len(svc.Spec.IPFamilies) == 0 {
			svc.Spec.IPFamilies = []corev1.IPFamily{corev1.IPv4Protocol}
		}
		if svc.Spec.IPFamilyPolicy == nil {
			p := corev1.IPFamilyPolicySingleStack
			svc.Spec.IPFamilyPolicy = &p
		}
	}
	if svc.Spec.Type == corev1.ServiceTypeNodePort || svc.Spec.Type == corev1.ServiceTypeLoadBalancer {
		for i := range svc.Spec.Ports {
			p := &svc.Spec.Ports[i]
			if p.NodePort == 0 {
				if p.NodePort, err = a.freePort(ports); err != nil {
					return err
				}
			} else if (old == nil || !hadNodePort(old, p.NodePort)) && ports[p.NodePort] {
				return invalid("Service", svc.Name, field.ErrorList{field.Invalid(field.NewPath("spec", "ports").Index(i).Child("nodePort"), p.NodePort, "provided port is already allocated")})
			} else if int(p.NodePort) < a.portBase || int(p.NodePort) >= a.portBase+a.portSize {
				return invalid("Service", svc.Name, field.ErrorList{field.Invalid(field.NewPath("spec", "ports").Index(i).Child("nodePort"), p.NodePort,
					fmt.Sprintf("provided port is not in the valid range. The range of valid ports is %d-%d", a.portBase, a.portBase+a.portSize-1))})
			}
			ports[p.NodePort] = true
			a.recentPrt[p.NodePort] = now
		}
	} else {
		for i := range svc.Spec.Ports {
			svc.Spec.Ports[i].NodePort = 0
		}
	}
	return nil
}

func hadNodePort(svc *corev1.Service, port int32) bool {
	for _, p := range svc.Spec.Ports {
		if p.NodePort == port {
			return true
		}
	}
	return false
}

// freeIP picks a free address at random, skipping the network address, the first
// sixteen (the kubernetes Service's and the cluster DNS's live there, and upstream
// keeps the low band for addresses asked for by name) and the broadcast address.
func (a *allocator) freeIP(used map[string]bool) (string, error) {
	n := a.size()
	if n < 32 {
		return "", apierrors.NewInternalError(fmt.Errorf("service range %s is too small", a.cidr))
	}
	start := 16 + rand.Uint32N(n-18)
	for i := uint32(0); i < n-18; i++ {
		ip := a.nth(16 + (start-16+i)%(n-18)).String()
		if !used[ip] {
			return ip, nil
		}
	}
	return "", apierrors.NewInternalError(fmt.Errorf("range is full: no free cluster IP in %s", a.cidr))
}

func (a *allocator) freePort(used map[int32]bool) (int32, error) {
	start := rand.IntN(a.portSize)
	for i := 0; i < a.portSize; i++ {
		p := int32(a.portBase + (start+i)%a.portSize)
		if !used[p] {
			return p, nil
		}
	}
	return 0, apierrors.NewInternalError(fmt.Errorf("range is full: no free node port in %d-%d", a.portBase, a.portBase+a.portSize-1))
}

func invalid(kind, name string, errs field.ErrorList) error {
	return apierrors.NewInvalid(schema.GroupKind{Kind: kind}, name, errs)
}

// kubernetesService is the default/kubernetes Service and its endpoints: the API
// server's own address, as in-cluster clients find it.
func (s *Server) kubernetesService(ctx context.Context) error {
	if s.alloc == nil || s.advertise == nil {
		return nil
	}
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "kubernetes", Namespace: metav1.NamespaceDefault,
			Labels: map[string]string{"component": "apiserver", "provider": "kubernetes"}},
		Spec: corev1.ServiceSpec{
			Type: corev1.ServiceTypeClusterIP, ClusterIP: s.alloc.firstIP().String(),
			Ports: []corev1.ServicePort{{Name: "https", Port: 443, Protocol: corev1.ProtocolTCP, TargetPort: intstr.FromInt32(int32(s.apiPort))}},
		},
	}
	svc.Spec.ClusterIPs = []string{svc.Spec.ClusterIP}
	if err := s.createInternal(ctx, s.reg.get("", "v1", "services"), svc); err != nil && !apierrors.IsAlreadyExists(err) {
		return err
	}
	ep := &corev1.Endpoints{
		ObjectMeta: metav1.ObjectMeta{Name: "kubernetes", Namespace: metav1.NamespaceDefault},
		Subsets: []corev1.EndpointSubset{{
			Addresses: []corev1.EndpointAddress{{IP: s.advertise.String()}},
			Ports:     []corev1.EndpointPort{{Name: "https", Port: int32(s.apiPort), Protocol: corev1.ProtocolTCP}},
		}},
	}
	if err := s.createInternal(ctx, s.reg.get("", "v1", "endpoints"), ep); err != nil && !apierrors.IsAlreadyExists(err) {
		return err
	}
	ready := true
	slice := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Name: "kubernetes", Namespace: metav1.NamespaceDefault,
			Labels: map[string]string{discoveryv1.LabelServiceName: "kubernetes", discoveryv1.LabelManagedBy: "endpointslice-controller.k8s.io"}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{s.advertise.String()}, Conditions: discoveryv1.EndpointConditions{Ready: &ready}}},
		Ports:       []discoveryv1.EndpointPort{{Name: ptr("https"), Port: ptr(int32(s.apiPort)), Protocol: ptr(corev1.ProtocolTCP)}},
	}
	if err := s.createInternal(ctx, s.reg.get("discovery.k8s.io", "v1", "endpointslices"), slice); err != nil && !apierrors.IsAlreadyExists(err) {
		return err
	}
	return nil
}
