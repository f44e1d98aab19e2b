package apiserver

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/duration"
)

// column is a Table column: a header, and (priority 1) whether only -o wide shows it.
type column struct {
	name, typ string
	wide      bool
}

// printer makes the cells of a row of one kind, after NAME and before AGE.
type printer struct {
	cols  []column
	cells func(obj runtime.Object) []any
	// ageAfter is how many columns come before AGE (0: all that -o wide does not add,
	// as upstream places it).
	ageAfter int
}

func (p printer) agePos() int {
	if p.ageAfter > 0 {
		return p.ageAfter
	}
	n := 0
	for _, c := range p.cols {
		if !c.wide {
			n++
		}
	}
	return n
}

func age(obj runtime.Object) string {
	acc, err := meta.Accessor(obj)
	if err != nil || acc.GetCreationTimestamp().Time.IsZero() {
		return "<unknown>"
	}
	return duration.HumanDuration(time.Since(acc.GetCreationTimestamp().Time))
}

// printers are upstream's columns for the kinds people `kubectl get` most; the other
// kinds get NAME and AGE.
var printers = map[string]printer{
	"Pod": {
		cols: []column{{"Ready", "string", false}, {"Status", "string", false}, {"Restarts", "string", false},
			{"IP", "string", true}, {"Node", "string", true}, {"Nominated Node", "string", true}, {"Readiness Gates", "string", true}},
		cells: func(o runtime.Object) []any {
			p := o.(*corev1.Pod)
			ready, restarts := 0, int32(0)
			for _, c := range p.Status.ContainerStatuses {
				if c.Ready {
					ready++
				}
				restarts += c.RestartCount
			}
			return []any{fmt.Sprintf("%d/%d", ready, len(p.Spec.Containers)), podStatus(p), strconv.Itoa(int(restarts)),
				orNone(p.Status.PodIP), orNone(p.Spec.NodeName), orNone(p.Status.NominatedNodeName), "<none>"}
		},
	},
	"Deployment": {
		cols: []column{{"Ready", "string", false}, {"Up-to-date", "integer", false}, {"Available", "integer", false},
			{"Containers", "string", true}, {"Images", "string", true}, {"Selector", "string", true}},
		cells: func(o runtime.Object) []any {
			d := o.(*appsv1.Deployment)
			names, images := containers(d.Spec.Template.Spec)
			return []any{fmt.Sprintf("%d/%d", d.Status.ReadyReplicas, deref(d.Spec.Replicas)), int64(d.Status.UpdatedReplicas),
				int64(d.Status.AvailableReplicas), names, images, selectorString(d.Spec.Selector)}
		},
	},
	"ReplicaSet": {
		cols: []column{{"Desired", "integer", false}, {"Current", "integer", false}, {"Ready", "integer", false},
			{"Containers", "string", true}, {"Images", "string", true}, {"Selector", "string", true}},
		cells: func(o runtime.Object) []any {
			r := o.(*appsv1.ReplicaSet)
			names, images := containers(r.Spec.Template.Spec)
			return []any{int64(deref(r.Spec.Replicas)), int64(r.Status.Replicas), int64(r.Status.ReadyReplicas), names, images, selectorString(r.Spec.Selector)}
		},
	},
	"StatefulSet": {
		cols: []column{{"Ready", "string", false}, {"Containers", "string", true}, {"Images", "string", true}},
		cells: func(o runtime.Object) []any {
			s := o.(*appsv1.StatefulSet)
			names, images := containers(s.Spec.Template.Spec)
			return []any{fmt.Sprintf("%d/%d", s.Status.ReadyReplicas, deref(s.Spec.Replicas)), names, images}
		},
	},
	"DaemonSet": {
		cols: []column{{"Desired", "integer", false}, {"Current", "integer", false}, {"Ready", "integer", false},
			{"Up-to-date", "integer", false}, {"Available", "integer", false}, {"Node Selector", "string", false}},
		cells: func(o runtime.Object) []any {
			d := o.(*appsv1.DaemonSet)
			return []any{int64(d.Status.DesiredNumberScheduled), int64(d.Status.CurrentNumberScheduled), int64(d.Status.NumberReady),
				int64(d.Status.UpdatedNumberScheduled), int64(d.Status.NumberAvailable), orNone(labelsString(d.Spec.Template.Spec.NodeSelector))}
		},
	},
	"Job": {
		cols: []column{{"Status", "string", false}, {"Completions", "string", false}, {"Duration", "string", false}},
		cells: func(o runtime.Object) []any {
			j := o.(*batchv1.Job)
			status := "Running"
			for _, c := range j.Status.Conditions {
				if c.Status == corev1.ConditionTrue && (c.Type == batchv1.JobComplete || c.Type == batchv1.JobFailed) {
					status = string(c.Type)
				}
			}
			want := int32(1)
			if j.Spec.Completions != nil {
				want = *j.Spec.Completions
			}
			d := ""
			if j.Status.StartTime != nil {
				end := time.Now()
				if j.Status.CompletionTime != nil {
					end = j.Status.CompletionTime.Time
				}
				d = duration.HumanDuration(end.Sub(j.Status.StartTime.Time))
			}
			return []any{status, fmt.Sprintf("%d/%d", j.Status.Succeeded, want), d}
		},
	},
	"Service": {
		cols: []column{{"Type", "string", false}, {"Cluster-IP", "string", false}, {"External-IP", "string", false},
			{"Port(s)", "string", false}, {"Selector", "string", true}},
		cells: func(o runtime.Object) []any {
			s := o.(*corev1.Service)
			var ports []string
			for _, p := range s.Spec.Ports {
				if p.NodePort != 0 {
					ports = append(ports, fmt.Sprintf("%d:%d/%s", p.Port, p.NodePort, p.Protocol))
				} else {
					ports = append(ports, fmt.Sprintf("%d/%s", p.Port, p.Protocol))
				}
			}
			ext := "<none>"
			if len(s.Spec.ExternalIPs) > 0 {
				ext = strings.Join(s.Spec.ExternalIPs, ",")
			}
			for _, in := range s.Status.LoadBalancer.Ingress {
				ext = in.IP
			}
			if s.Spec.Type == corev1.ServiceTypeLoadBalancer && ext == "<none>" {
				ext = "<pending>"
			}
			return []any{string(s.Spec.Type), orNone(s.Spec.ClusterIP), ext, orNone(strings.Join(ports, ",")), orNone(labelsString(s.Spec.Selector))}
		},
	},
	"Namespace": {
		cols:  []column{{"Status", "string", false}},
		cells: func(o runtime.Object) []any { return []any{string(o.(*corev1.Namespace).Status.Phase)} },
	},
	"Node": {
		ageAfter: 2,
		cols: []column{{"Status", "string", false}, {"Roles", "string", false}, {"Version", "string", false},
			{"Internal-IP", "string", true}, {"OS-Image", "string", true}, {"Kernel-Version", "string", true}, {"Container-Runtime", "string", true}},
		cells: func(o runtime.Object) []any {
			n := o.(*corev1.Node)
			status := "NotReady"
			for _, c := range n.Status.Conditions {
				if c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue {
					status = "Ready"
				}
			}
			if n.Spec.Unschedulable {
				status += ",SchedulingDisabled"
			}
			var roles []string
			for k := range n.Labels {
				if r, ok := strings.CutPrefix(k, "node-role.kubernetes.io/"); ok {
					roles = append(roles, r)
				}
			}
			sort.Strings(roles)
			ip := "<none>"
			for _, a := range n.Status.Addresses {
				if a.Type == corev1.NodeInternalIP {
					ip = a.Address
				}
			}
			ni := n.Status.NodeInfo
			return []any{status, orNone(strings.Join(roles, ",")), ni.KubeletVersion, ip, ni.OSImage, ni.KernelVersion, ni.ContainerRuntimeVersion}
		},
	},
	"ConfigMap": {
		cols: []column{{"Data", "integer", false}},
		cells: func(o runtime.Object) []any {
			c := o.(*corev1.ConfigMap)
			return []any{int64(len(c.Data) + len(c.BinaryData))}
		},
	},
	"Secret": {
		cols: []column{{"Type", "string", false}, {"Data", "integer", false}},
		cells: func(o runtime.Object) []any {
			s := o.(*corev1.Secret)
			return []any{string(s.Type), int64(len(s.Data))}
		},
	},
	"ServiceAccount": {
		cols:  []column{{"Secrets", "integer", false}},
		cells: func(o runtime.Object) []any { return []any{int64(len(o.(*corev1.ServiceAccount).Secrets))} },
	},
	"Event": {
		cols: []column{{"Type", "string", false}, {"Reason", "string", false}, {"Object", "string", false}, {"Message", "string", false}},
		cells: func(o runtime.Object) []any {
			e, ok := o.(*corev1.Event)
			if !ok {
				return []any{"", "", "", ""}
			}
			return []any{e.Type, e.Reason, strings.ToLower(e.InvolvedObject.Kind) + "/" + e.InvolvedObject.Name, strings.TrimSpace(e.Message)}
		},
	},
}

// podStatus is the STATUS kubectl shows: a waiting or terminated container's reason
// over the phase, and Terminating once deleted.
func podStatus(p *corev1.Pod) string {
	reason := string(p.Status.Phase)
	if p.Status.Reason != "" {
		reason = p.Status.Reason
	}
	for _, c := range p.Status.ContainerStatuses {
		if w := c.State.Waiting; w != nil && w.Reason != "" {
			reason = w.Reason
		} else if t := c.State.Terminated; t != nil && t.Reason != "" && reason != "Running" {
			reason = t.Reason
		}
	}
	if p.DeletionTimestamp != nil {
		reason = "Terminating"
	}
	return reason
}

func containers(s corev1.PodSpec) (string, string) {
	var names, images []string
	for _, c := range s.Containers {
		names, images = append(names, c.Name), append(images, c.Image)
	}
	return strings.Join(names, ","), strings.Join(images, ",")
}

func selectorString(s *metav1.LabelSelector) string {
	if s == nil {
		return "<none>"
	}
	sel, err := metav1.LabelSelectorAsSelector(s)
	if err != nil {
		return "<error>"
	}
	return orNone(sel.String())
}

func labelsString(m map[string]string) string {
	var parts []string
	for k, v := range m {
		parts = append(parts, k+"="+v)
	}
	sort.Strings(parts)
	return strings.Join(parts, ",")
}

func orNone(s string) string {
	if s == "" {
		return "<none>"
	}
	return s
}

// table prints objects as a meta.k8s.io Table, with the full objects attached to the
// rows (kubectl uses them for --show-labels, sorting and -o name).
func table(kind string, objs []runtime.Object, withHeaders bool) *metav1.Table {
	p, ok := printers[kind]
	t := &metav1.Table{TypeMeta: metav1.TypeMeta{Kind: "Table", APIVersion: "meta.k8s.io/v1"}}
	ageDef := metav1.TableColumnDefinition{Name: "Age", Type: "string", Description: "CreationTimestamp is a timestamp representing the server time when this object was created."}
	pos := p.agePos()
	if withHeaders {
		t.ColumnDefinitions = append(t.ColumnDefinitions, metav1.TableColumnDefinition{Name: "Name", Type: "string", Format: "name", Description: "Name must be unique within a namespace."})
		for i, c := range p.cols {
			if i == pos {
				t.ColumnDefinitions = append(t.ColumnDefinitions, ageDef)
			}
			def := metav1.TableColumnDefinition{Name: c.name, Type: c.typ}
			if c.wide {
				def.Priority = 1
			}
			t.ColumnDefinitions = append(t.ColumnDefinitions, def)
		}
		if pos >= len(p.cols) {
			t.ColumnDefinitions = append(t.ColumnDefinitions, ageDef)
		}
	}
	for _, obj := range objs {
		acc, _ := meta.Accessor(obj)
		var cells []any
		if ok {
			cells = p.cells(obj)
		}
		row := append([]any{acc.GetName()}, cells[:min(pos, len(cells))]...)
		row = append(row, age(obj))
		row = append(row, cells[min(pos, len(cells)):]...)
		raw, _ := runtime.Encode(codecs.EncoderForVersion(storageJSON, obj.GetObjectKind().GroupVersionKind().GroupVersion()), obj)
		t.Rows = append(t.Rows, metav1.TableRow{Cells: row, Object: runtime.RawExtension{Raw: raw}})
	}
	return t
}
