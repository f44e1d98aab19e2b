package endpointslice

import (
	"context"
	"maps"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/berth-project/berth/internal/controller/ownerref"
)

// maxPerSlice is upstream's default --max-endpoints-per-slice.
const maxPerSlice = 100

var serviceKind = corev1.SchemeGroupVersion.WithKind("Service")

// reconcileSlices makes the Service's slices hold the groups (split at maxPerSlice
// endpoints), reusing existing slices with the same ports, and deletes the rest.
func (c *Controller) reconcileSlices(ctx context.Context, svc *corev1.Service, groups []Group) error {
	sel := labels.SelectorFromSet(labels.Set{discoveryv1.LabelServiceName: svc.Name, discoveryv1.LabelManagedBy: ManagedBy})
	existing, err := c.sliceLister.EndpointSlices(svc.Namespace).List(sel)
	if err != nil {
		return err
	}
	family := addressType(svc)
	lbls := serviceLabels(svc)
	lbls[discoveryv1.LabelServiceName], lbls[discoveryv1.LabelManagedBy] = svc.Name, ManagedBy
	used := map[string]bool{}
	write := func(ports []discoveryv1.EndpointPort, eps []discoveryv1.Endpoint) error {
		for _, s := range existing {
			if used[s.Name] || s.AddressType != family || portsKey(s.Ports) != portsKey(ports) {
				continue
			}
			used[s.Name] = true
			if equality.Semantic.DeepEqual(s.Endpoints, eps) && maps.Equal(s.Labels, lbls) {
				return nil
			}
			cp := s.DeepCopy()
			cp.Endpoints, cp.Labels = eps, lbls
			_, err := c.client.DiscoveryV1().EndpointSlices(svc.Namespace).Update(ctx, cp, metav1.UpdateOptions{})
			return err
		}
		slice := &discoveryv1.EndpointSlice{
			ObjectMeta: metav1.ObjectMeta{
				GenerateName: svc.Name + "-", Namespace: svc.Namespace, Labels: lbls,
				OwnerReferences: []metav1.OwnerReference{ownerref.ControllerRef(svc, serviceKind)},
			},
			AddressType: family, Endpoints: eps, Ports: ports,
		}
		_, err := c.client.DiscoveryV1().EndpointSlices(svc.Namespace).Create(ctx, slice, metav1.CreateOptions{})
		if apierrors.HasStatusCause(err, corev1.NamespaceTerminatingCause) {
			return nil
		}
		return err
	}
	if len(groups) == 0 {
		// A Service with no endpoints still has one (empty) slice, as upstream.
		groups = []Group{{Ports: endpointPorts(svc, &corev1.Pod{})}}
	}
	for _, g := range groups {
		for start := 0; start == 0 || start < len(g.Endpoints); start += maxPerSlice {
			end := min(start+maxPerSlice, len(g.Endpoints))
			if err := write(g.Ports, g.Endpoints[start:end]); err != nil {
				return err
			}
		}
	}
	for _, s := range existing {
		if used[s.Name] {
			continue
		}
		if err := c.client.DiscoveryV1().EndpointSlices(s.Namespace).Delete(ctx, s.Name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			return err
		}
	}
	return nil
}
