// Package downward computes the downward API's values (fieldRef and resourceFieldRef) for
// environment variables and downwardAPI volumes alike.
package downward

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

// Field is the downward API's value of a fieldRef path.
func Field(pod *corev1.Pod, path, hostIP, podIP string) (string, error) {
	if key, ok := subscript(path, "metadata.labels"); ok {
		return pod.Labels[key], nil
	}
	if key, ok := subscript(path, "metadata.annotations"); ok {
		return pod.Annotations[key], nil
	}
	switch path {
	case "metadata.name":
		return pod.Name, nil
	case "metadata.namespace":
		return pod.Namespace, nil
	case "metadata.uid":
		return string(pod.UID), nil
	case "metadata.labels":
		return FormatMap(pod.Labels), nil
	case "metadata.annotations":
		return FormatMap(pod.Annotations), nil
	case "spec.nodeName":
		return pod.Spec.NodeName, nil
	case "spec.serviceAccountName":
		return pod.Spec.ServiceAccountName, nil
	case "status.hostIP", "status.hostIPs":
		return hostIP, nil
	case "status.podIP", "status.podIPs":
		if podIP == "" && pod.Spec.HostNetwork {
			return hostIP, nil
		}
		return podIP, nil
	}
	return "", fmt.Errorf("unsupported fieldPath %q", path)
}

// subscript parses `prefix['key']`.
func subscript(path, prefix string) (string, bool) {
	rest, ok := strings.CutPrefix(path, prefix+"['")
	if !ok || !strings.HasSuffix(rest, "']") {
		return "", false
	}
	return strings.TrimSuffix(rest, "']"), true
}

// FormatMap renders labels or annotations as the downward API's key="value" lines, sorted.
func FormatMap(m map[string]string) string {
	keys := make([]string, 0, len(m))
	for key := range m {
		keys = append(keys, key)
	}
	sort.Strings(keys)
	var b strings.Builder
	for i, key := range keys {
		if i > 0 {
			b.WriteByte('\n')
		}
		fmt.Fprintf(&b, "%s=%s", key, strconv.Quote(m[key]))
	}
	return b.String()
}

// Resource is a container's request or limit in the unit the divisor names; limits that
// are not set report the node's allocatable, as upstream does.
func Resource(pod *corev1.Pod, c *corev1.Container, r *corev1.ResourceFieldSelector, node corev1.ResourceList) (string, error) {
	if r.ContainerName != "" && r.ContainerName != c.Name {
		found := false
		for _, cc := range append(append([]corev1.Container{}, pod.Spec.InitContainers...), pod.Spec.Containers...) {
			if cc.Name == r.ContainerName {
				c, found = &cc, true
				break
			}
		}
		if !found {
			return "", fmt.Errorf("resourceFieldRef: no container %q", r.ContainerName)
		}
	}
	kind, name, ok := strings.Cut(r.Resource, ".")
	if !ok {
		return "", fmt.Errorf("unsupported resource %q", r.Resource)
	}
	var q resource.Quantity
	var have bool
	switch kind {
	case "limits":
		q, have = c.Resources.Limits[corev1.ResourceName(name)]
		if !have {
			q, have = node[corev1.ResourceName(name)]
		}
	case "requests":
		q, have = c.Resources.Requests[corev1.ResourceName(name)]
	default:
		return "", fmt.Errorf("unsupported resource %q", r.Resource)
	}
	if !have {
		if name == "cpu" || name == "memory" || name == "ephemeral-storage" {
			return "0", nil
		}
		return "", fmt.Errorf("unsupported resource %q", r.Resource)
	}
	div := r.Divisor
	if div.IsZero() {
		div = resource.MustParse("1")
	}
	if name == "cpu" {
		// Rounded up, so a 250m request with the default divisor reads 1.
		m := q.MilliValue()
		d := div.MilliValue()
		return strconv.FormatInt((m+d-1)/d, 10), nil
	}
	v, d := q.Value(), div.Value()
	return strconv.FormatInt((v+d-1)/d, 10), nil
}
