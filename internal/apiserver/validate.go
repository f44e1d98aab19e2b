package apiserver

import (
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// dnsLabelKinds name objects with a DNS label (no dots); the rest take a DNS subdomain.
var dnsLabelKinds = map[string]bool{"Namespace": true, "Service": true}

// validate checks what upstream's validation would refuse first: names, and the few
// rules clients commonly trip over. A refusal is a 422 with field causes.
func validate(res *resource, obj runtime.Object) error {
	acc, err := meta.Accessor(obj)
	if err != nil {
		return apierrors.NewBadRequest(err.Error())
	}
	var errs field.ErrorList
	name := field.NewPath("metadata", "name")
	switch {
	case acc.GetName() == "":
		errs = append(errs, field.Required(name, "name or generateName is required"))
	case dnsLabelKinds[res.kind]:
		for _, m := range validation.IsDNS1123Label(acc.GetName()) {
			errs = append(errs, field.Invalid(name, acc.GetName(), m))
		}
	case res.kind != "Node" && res.kind != "ClusterRole" && res.kind != "ClusterRoleBinding" && res.kind != "Role" && res.kind != "RoleBinding":
		for _, m := range validation.IsDNS1123Subdomain(acc.GetName()) {
			errs = append(errs, field.Invalid(name, acc.GetName(), m))
		}
	}
	for k := range acc.GetLabels() {
		for _, m := range validation.IsQualifiedName(k) {
			errs = append(errs, field.Invalid(field.NewPath("metadata", "labels"), k, m))
		}
	}
	for k, v := range acc.GetLabels() {
		for _, m := range validation.IsValidLabelValue(v) {
			errs = append(errs, field.Invalid(field.NewPath("metadata", "labels").Key(k), v, m))
		}
	}
	if res.custom != nil {
		errs = append(errs, res.custom.validate(obj)...)
	}
	switch o := obj.(type) {
	case *apiextensionsv1.CustomResourceDefinition:
		errs = append(errs, validateCRD(o)...)
	case *corev1.Pod:
		errs = append(errs, validatePodSpec(&o.Spec, field.NewPath("spec"))...)
	case *appsv1.Deployment:
		errs = append(errs, validateSelector(o.Spec.Selector, o.Spec.Template.Labels, field.NewPath("spec"))...)
		errs = append(errs, validatePodSpec(&o.Spec.Template.Spec, field.NewPath("spec", "template", "spec"))...)
	case *appsv1.ReplicaSet:
		errs = append(errs, validateSelector(o.Spec.Selector, o.Spec.Template.Labels, field.NewPath("spec"))...)
		errs = append(errs, validatePodSpec(&o.Spec.Template.Spec, field.NewPath("spec", "template", "spec"))...)
	case *appsv1.StatefulSet:
		errs = append(errs, validateSelector(o.Spec.Selector, o.Spec.Template.Labels, field.NewPath("spec"))...)
	case *appsv1.DaemonSet:
		errs = append(errs, validateSelector(o.Spec.Selector, o.Spec.Template.Labels, field.NewPath("spec"))...)
	}
	if len(errs) > 0 {
		return apierrors.NewInvalid(res.gvk().GroupKind(), acc.GetName(), errs)
	}
	return nil
}

func validatePodSpec(s *corev1.PodSpec, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	if len(s.Containers) == 0 {
		errs = append(errs, field.Required(p.Child("containers"), ""))
	}
	seen := map[string]bool{}
	for i, c := range s.Containers {
		cp := p.Child("containers").Index(i)
		if c.Name == "" {
			errs = append(errs, field.Required(cp.Child("name"), ""))
		} else {
			for _, m := range validation.IsDNS1123Label(c.Name) {
				errs = append(errs, field.Invalid(cp.Child("name"), c.Name, m))
			}
			if seen[c.Name] {
				errs = append(errs, field.Duplicate(cp.Child("name"), c.Name))
			}
			seen[c.Name] = true
		}
		if c.Image == "" {
			errs = append(errs, field.Required(cp.Child("image"), ""))
		}
	}
	return errs
}

func validateSelector(sel *metav1.LabelSelector, podLabels map[string]string, p *field.Path) field.ErrorList {
	if sel == nil {
		return field.ErrorList{field.Required(p.Child("selector"), "")}
	}
	s, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil {
		return field.ErrorList{field.Invalid(p.Child("selector"), sel, err.Error())}
	}
	if s.Empty() {
		return field.ErrorList{field.Invalid(p.Child("selector"), sel, "empty selector is invalid for deployment")}
	}
	if !s.Matches(labels.Set(podLabels)) {
		return field.ErrorList{field.Invalid(p.Child("template", "metadata", "labels"), podLabels, "`selector` does not match template `labels`")}
	}
	return nil
}
