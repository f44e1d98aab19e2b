package endpointslice

import (
	"context"
	"maps"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// subsets is the legacy form of the groups: ready addresses and not-ready ones per
// port mapping; terminating pods are left out unless the Service publishes
// not-ready addresses.
func subsets(svc *corev1.Service, groups []Group) []corev1.EndpointSubset {
	var out []corev1.EndpointSubset
	for _, g := range groups {
		var sub corev1.EndpointSubset
		for _, p := range g.Ports {
			sub.Ports = append(sub.Ports, corev1.EndpointPort{Name: deref(p.Name), Port: deref(p.Port), Protocol: deref(p.Protocol), AppProtocol: p.AppProtocol})
		}
		for _, ep := range g.Endpoints {
			if deref(ep.Conditions.Terminating) && !svc.Spec.PublishNotReadyAddresses {
				continue
			}
			a := corev1.EndpointAddress{IP: ep.Addresses[0], NodeName: ep.NodeName, TargetRef: ep.TargetRef}
			if ep.Hostname != nil {
				a.Hostname = *ep.Hostname
			}
			if deref(ep.Conditions.Ready) {
				sub.Addresses = append(sub.Addresses, a)
			} else {
				sub.NotReadyAddresses = append(sub.NotReadyAddresses, a)
			}
		}
		if len(sub.Addresses)+len(sub.NotReadyAddresses) > 0 {
			out = append(out, sub)
		}
	}
	return out
}

// reconcileEndpoints writes the Service's Endpoints object (same name as the Service).
func (c *Controller) reconcileEndpoints(ctx context.Context, svc *corev1.Service, groups []Group) error {
	want := subsets(svc, groups)
	lbls := serviceLabels(svc)
	lbls[endpointsLabel] = endpointsManagedBy
	cur, err := c.epLister.Endpoints(svc.Namespace).Get(svc.Name)
	switch {
	case apierrors.IsNotFound(err):
		ep := &corev1.Endpoints{ObjectMeta: metav1.ObjectMeta{Name: svc.Name, Namespace: svc.Namespace, Labels: lbls}, Subsets: want}
		_, err := c.client.CoreV1().Endpoints(svc.Namespace).Create(ctx, ep, metav1.CreateOptions{})
		if apierrors.IsAlreadyExists(err) || apierrors.HasStatusCause(err, corev1.NamespaceTerminatingCause) {
			return nil // the informer will show it; a sync follows
		}
		return err
	case err != nil:
		return err
	}
	if equality.Semantic.DeepEqual(cur.Subsets, want) && maps.Equal(cur.Labels, lbls) {
		return nil
	}
	cp := cur.DeepCopy()
	cp.Subsets, cp.Labels = want, lbls
	_, err = c.client.CoreV1().Endpoints(svc.Namespace).Update(ctx, cp, metav1.UpdateOptions{})
	return err
}

// deleteEndpoints removes the Endpoints of a deleted Service, if this controller
// made them.
func (c *Controller) deleteEndpoints(ctx context.Context, ns, name string) error {
	cur, err := c.epLister.Endpoints(ns).Get(name)
	if err != nil || cur.Labels[endpointsLabel] != endpointsManagedBy {
		return nil
	}
	err = c.client.CoreV1().Endpoints(ns).Delete(ctx, name, metav1.DeleteOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}
