package apiserver

import (
	"fmt"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
)

// fieldsOf are the fields a field selector may name, per kind, as upstream offers them.
func fieldsOf(obj runtime.Object) fields.Set {
	acc, err := meta.Accessor(obj)
	if err != nil {
		return nil
	}
	set := fields.Set{"metadata.name": acc.GetName()}
	if acc.GetNamespace() != "" {
		set["metadata.namespace"] = acc.GetNamespace()
	}
	switch o := obj.(type) {
	case *corev1.Pod:
		set["spec.nodeName"] = o.Spec.NodeName
		set["spec.restartPolicy"] = string(o.Spec.RestartPolicy)
		set["spec.schedulerName"] = o.Spec.SchedulerName
		set["spec.serviceAccountName"] = o.Spec.ServiceAccountName
		set["spec.hostNetwork"] = strconv.FormatBool(o.Spec.HostNetwork)
		set["status.phase"] = string(o.Status.Phase)
		set["status.podIP"] = o.Status.PodIP
		set["status.nominatedNodeName"] = o.Status.NominatedNodeName
	case *corev1.Event:
		io := o.InvolvedObject
		set["involvedObject.kind"] = io.Kind
		set["involvedObject.namespace"] = io.Namespace
		set["involvedObject.name"] = io.Name
		set["involvedObject.uid"] = string(io.UID)
		set["involvedObject.apiVersion"] = io.APIVersion
		set["involvedObject.resourceVersion"] = io.ResourceVersion
		set["involvedObject.fieldPath"] = io.FieldPath
		set["reason"] = o.Reason
		set["reportingComponent"] = o.ReportingController
		set["source"] = o.Source.Component
		set["type"] = o.Type
	case *corev1.Secret:
		set["type"] = string(o.Type)
	case *corev1.Node:
		set["spec.unschedulable"] = strconv.FormatBool(o.Spec.Unschedulable)
	case *corev1.Namespace:
		set["status.phase"] = string(o.Status.Phase)
	case *corev1.ReplicationController:
		set["status.replicas"] = strconv.Itoa(int(o.Status.Replicas))
	}
	return set
}

// checkFieldSelector refuses fields the resource does not offer (400, as upstream).
func checkFieldSelector(res *resource, sel fields.Selector) error {
	if sel.Empty() {
		return nil
	}
	known := fieldsOf(res.new())
	known["metadata.namespace"] = ""
	for _, req := range sel.Requirements() {
		if _, ok := known[req.Field]; !ok {
			return apierrors.NewBadRequest(fmt.Sprintf("field label not supported: %s", req.Field))
		}
	}
	return nil
}

func matches(res *resource, obj runtime.Object, ls labels.Selector, fs fields.Selector) bool {
	if !ls.Empty() {
		acc, err := meta.Accessor(obj)
		if err != nil || !ls.Matches(labels.Set(acc.GetLabels())) {
			return false
		}
	}
	if !fs.Empty() && !fs.Matches(fieldsOf(obj)) {
		return false
	}
	return true
}
