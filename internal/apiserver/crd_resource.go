package apiserver

import (
	"fmt"
	"net/http"
	"reflect"
	"sort"
	"strings"
	"sync"

	apiextensions "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	structuralschema "k8s.io/apiextensions-apiserver/pkg/apiserver/schema"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema/pruning"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/managedfields"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/kube-openapi/pkg/builder3"
	"k8s.io/kube-openapi/pkg/common"
	openapierrors "k8s.io/kube-openapi/pkg/validation/errors"
	"k8s.io/kube-openapi/pkg/validation/spec"
	"k8s.io/kube-openapi/pkg/validation/strfmt"
	openapivalidate "k8s.io/kube-openapi/pkg/validation/validate"

	"github.com/berth-project/berth/internal/apiserver/openapi"
)

// customResource is what a served version of a CRD adds to a resource: its schema
// (pruning, defaults, validation), its OpenAPI model, its printer columns and scale paths.
type customResource struct {
	crdName        string
	storageVersion string
	structural     *structuralschema.Structural // nil: no schema (anything goes)
	openAPI        *spec.Schema                 // the schema as OpenAPI, for validation and documents
	validator      *openapivalidate.SchemaValidator
	columns        []apiextensionsv1.CustomResourceColumnDefinition
	scale          *apiextensionsv1.CustomResourceSubresourceScale
	typeConverter  managedfields.TypeConverter
	generation     int // changes when the CRD does, so cached field managers are remade
}

func newUnstructured(gvk schema.GroupVersionKind) *unstructured.Unstructured {
	u := &unstructured.Unstructured{Object: map[string]any{}}
	u.SetGroupVersionKind(gvk)
	return u
}

func newUnstructuredList(gvk schema.GroupVersionKind) *unstructured.UnstructuredList {
	l := &unstructured.UnstructuredList{Object: map[string]any{}}
	l.SetGroupVersionKind(gvk)
	return l
}

// customModelName is upstream's OpenAPI name of a custom kind: the group reversed, the
// version, the kind ("com.example.stable.v1.CronTab").
func customModelName(gvk schema.GroupVersionKind) string {
	parts := strings.Split(gvk.Group, ".")
	for i, j := 0, len(parts)-1; i < j; i, j = i+1, j-1 {
		parts[i], parts[j] = parts[j], parts[i]
	}
	return strings.Join(parts, ".") + "." + gvk.Version + "." + gvk.Kind
}

// customResources are the resources a CRD serves, one per served version.
func customResources(crd *apiextensionsv1.CustomResourceDefinition, generation int) ([]*resource, error) {
	var out []*resource
	storage := ""
	for _, v := range crd.Spec.Versions {
		if v.Storage {
			storage = v.Name
		}
	}
	for _, v := range crd.Spec.Versions {
		if !v.Served {
			continue
		}
		names := crd.Spec.Names
		r := &resource{
			gvr:  schema.GroupVersionResource{Group: crd.Spec.Group, Version: v.Name, Resource: names.Plural},
			kind: names.Kind, namespaced: crd.Spec.Scope == apiextensionsv1.NamespaceScoped,
			shortNames: names.ShortNames, categories: names.Categories,
		}
		c := &customResource{crdName: crd.Name, storageVersion: storage, columns: v.AdditionalPrinterColumns, generation: generation}
		if sr := v.Subresources; sr != nil {
			if sr.Status != nil {
				r.subresources = append(r.subresources, "status")
			}
			if sr.Scale != nil {
				r.subresources = append(r.subresources, "scale")
				c.scale = sr.Scale
			}
		}
		if v.Schema != nil && v.Schema.OpenAPIV3Schema != nil {
			internal := &apiextensions.JSONSchemaProps{}
			if err := apiextensionsv1.Convert_v1_JSONSchemaProps_To_apiextensions_JSONSchemaProps(v.Schema.OpenAPIV3Schema, internal, nil); err != nil {
				return nil, fmt.Errorf("schema of %s %s: %w", crd.Name, v.Name, err)
			}
			st, err := structuralschema.NewStructural(internal)
			if err != nil {
				return nil, fmt.Errorf("schema of %s %s: %w", crd.Name, v.Name, err)
			}
			if errs := structuralschema.ValidateStructural(nil, st); len(errs) > 0 {
				return nil, fmt.Errorf("schema of %s %s is not structural: %v", crd.Name, v.Name, errs.ToAggregate())
			}
			c.structural, c.openAPI = st, st.ToKubeOpenAPI()
			c.validator = openapivalidate.NewSchemaValidator(c.openAPI, nil, "", strfmt.Default)
		}
		r.custom = c
		tc, err := c.newTypeConverter(r)
		if err != nil {
			return nil, fmt.Errorf("type converter of %s %s: %w", crd.Name, v.Name, err)
		}
		c.typeConverter = tc
		out = append(out, r)
	}
	return out, nil
}

// definitions are the OpenAPI definitions of the kind and its list, as upstream builds
// them from the CRD: the schema with metadata pointing at ObjectMeta, and the GVK.
func (c *customResource) definitions(r *resource, ref common.ReferenceCallback) map[string]common.OpenAPIDefinition {
	s := spec.Schema{}
	if c.openAPI != nil {
		s = *c.openAPI
		s.Properties = map[string]spec.Schema{}
		for k, v := range c.openAPI.Properties {
			s.Properties[k] = v
		}
	} else {
		s.Type = spec.StringOrArray{"object"}
		s.Extensions = spec.Extensions{"x-kubernetes-preserve-unknown-fields": true}
	}
	if len(s.Type) == 0 {
		s.Type = spec.StringOrArray{"object"}
	}
	str := func(desc string) spec.Schema {
		return spec.Schema{SchemaProps: spec.SchemaProps{Type: spec.StringOrArray{"string"}, Description: desc}}
	}
	s.Properties["apiVersion"] = str("APIVersion defines the versioned schema of this representation of an object.")
	s.Properties["kind"] = str("Kind is a string value representing the REST resource this object represents.")
	metaName := metav1.ObjectMeta{}.OpenAPIModelName()
	s.Properties["metadata"] = spec.Schema{SchemaProps: spec.SchemaProps{Ref: ref(metaName),
		Description: "Standard object's metadata. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata"}}
	name := customModelName(r.gvk())
	list := spec.Schema{SchemaProps: spec.SchemaProps{
		Type: spec.StringOrArray{"object"}, Required: []string{"items"},
		Description: r.kind + "List is a list of " + r.kind,
		Properties: map[string]spec.Schema{
			"apiVersion": s.Properties["apiVersion"], "kind": s.Properties["kind"],
			"metadata": {SchemaProps: spec.SchemaProps{Ref: ref(metav1.ListMeta{}.OpenAPIModelName())}},
			"items": {SchemaProps: spec.SchemaProps{Type: spec.StringOrArray{"array"},
				Items: &spec.SchemaOrArray{Schema: &spec.Schema{SchemaProps: spec.SchemaProps{Ref: ref(name)}}}}},
		},
	}}
	return map[string]common.OpenAPIDefinition{
		name:          {Schema: s, Dependencies: []string{metaName}},
		name + "List": {Schema: list, Dependencies: []string{name, metav1.ListMeta{}.OpenAPIModelName()}},
	}
}

// newTypeConverter parses the kind's model (and ObjectMeta's) for managed fields.
func (c *customResource) newTypeConverter(r *resource) (managedfields.TypeConverter, error) {
	name := customModelName(r.gvk())
	gvkExt := spec.Extensions{"x-kubernetes-group-version-kind": []any{map[string]any{"group": r.gvr.Group, "version": r.gvr.Version, "kind": r.kind}}}
	models, err := builder3.BuildOpenAPIDefinitionsForResources(&common.OpenAPIV3Config{
		GetDefinitions: func(ref common.ReferenceCallback) map[string]common.OpenAPIDefinition {
			defs := openapi.GetOpenAPIDefinitions(ref)
			for k, v := range c.definitions(r, ref) {
				defs[k] = v
			}
			return defs
		},
		GetDefinitionName: func(n string) (string, spec.Extensions) {
			if n == name {
				return n, gvkExt
			}
			return n, nil
		},
	}, name)
	if err != nil {
		return nil, err
	}
	return managedfields.NewTypeConverter(models, false)
}

// admit prunes the fields the schema does not know (reported as the request's
// fieldValidation says), and applies the schema's defaults.
func (c *customResource) admit(r *http.Request, gvk schema.GroupVersionKind, obj runtime.Object) (runtime.Object, error) {
	u, ok := obj.(*unstructured.Unstructured)
	if !ok {
		return obj, nil
	}
	u.SetGroupVersionKind(gvk) // the versions share one schema: conversion is a relabel
	unknown, err := normalizeMetadata(u)
	if err != nil {
		return nil, apierrors.NewBadRequest(fmt.Sprintf("%s in version %q cannot be handled as a %s: %v", gvk.Kind, gvk.Version, gvk.Kind, err))
	}
	if c.structural != nil {
		unknown = append(unknown, pruning.PruneWithOptions(u.Object, c.structural, true, structuralschema.UnknownFieldPathOptions{TrackUnknownFieldPaths: true})...)
	}
	if len(unknown) > 0 {
		var errs []error
		for _, p := range unknown {
			errs = append(errs, fmt.Errorf("unknown field %q", p))
		}
		if err := checkUnknownFields(r, gvk, runtime.NewStrictDecodingError(errs)); err != nil {
			return nil, err
		}
	}
	if c.structural != nil {
		applyDefaults(u.Object, c.structural)
	}
	return u, nil
}

// objectMetaFields are the JSON names of ObjectMeta's fields.
var objectMetaFields = sync.OnceValue(func() map[string]bool {
	out := map[string]bool{}
	t := reflect.TypeOf(metav1.ObjectMeta{})
	for i := 0; i < t.NumField(); i++ {
		if name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ","); name != "" {
			out[name] = true
		}
	}
	return out
})

// normalizeMetadata makes a custom resource's metadata an ObjectMeta (the schema does
// not cover it): fields ObjectMeta lacks are dropped and reported, values of the wrong
// type are an error.
func normalizeMetadata(u *unstructured.Unstructured) (unknown []string, err error) {
	m, ok := u.Object["metadata"].(map[string]any)
	if !ok {
		if _, found := u.Object["metadata"]; found {
			return nil, fmt.Errorf("metadata must be an object")
		}
		return nil, nil
	}
	for k := range m {
		if !objectMetaFields()[k] {
			unknown = append(unknown, "metadata."+k)
			delete(m, k)
		}
	}
	sort.Strings(unknown)
	var om metav1.ObjectMeta
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(m, &om); err != nil {
		return nil, fmt.Errorf("metadata: %w", err)
	}
	return unknown, nil
}

// encode is how a custom resource is stored: as JSON of the storage version.
func (c *customResource) encode(obj runtime.Object) ([]byte, error) {
	u, ok := obj.(*unstructured.Unstructured)
	if !ok {
		return nil, fmt.Errorf("custom resource stored as %T", obj)
	}
	u = u.DeepCopy()
	gvk := u.GroupVersionKind()
	gvk.Version = c.storageVersion
	u.SetGroupVersionKind(gvk)
	return u.MarshalJSON()
}

// defaultOnRead applies the schema's defaults to a stored object, as upstream does when
// it reads one: defaults added to a CRD show on the objects stored before.
func (c *customResource) defaultOnRead(obj runtime.Object) {
	if u, ok := obj.(*unstructured.Unstructured); ok && c.structural != nil {
		applyDefaults(u.Object, c.structural)
	}
}

// applyDefaults fills in the schema's defaults where a field is missing (or a
// non-nullable null), deepest last, as upstream's defaulting does.
func applyDefaults(x any, s *structuralschema.Structural) {
	if s == nil {
		return
	}
	switch x := x.(type) {
	case map[string]any:
		for k, prop := range s.Properties {
			if prop.Default.Object == nil {
				continue
			}
			if v, found := x[k]; !found || (v == nil && !prop.Nullable) {
				x[k] = runtime.DeepCopyJSONValue(prop.Default.Object)
			}
		}
		for k, v := range x {
			if prop, found := s.Properties[k]; found {
				applyDefaults(v, &prop)
			} else if s.AdditionalProperties != nil && s.AdditionalProperties.Structural != nil {
				applyDefaults(v, s.AdditionalProperties.Structural)
			}
		}
	case []any:
		for _, v := range x {
			applyDefaults(v, s.Items)
		}
	}
}

// validate checks the object against the schema: the field errors of a 422.
func (c *customResource) validate(obj runtime.Object) field.ErrorList {
	u, ok := obj.(*unstructured.Unstructured)
	if !ok || c.validator == nil {
		return nil
	}
	res := c.validator.Validate(u.Object)
	var errs field.ErrorList
	for _, e := range res.Errors {
		errs = append(errs, openAPIFieldError(e))
	}
	return errs
}

// openAPIFieldError turns a kube-openapi validation error into the field error upstream
// reports ("spec.replicas: Invalid value: "string": spec.replicas in body must be of
// type integer: "string"").
func openAPIFieldError(e error) *field.Error {
	v, ok := e.(*openapierrors.Validation)
	if !ok {
		return field.Invalid(nil, "", e.Error())
	}
	var path *field.Path
	if n := strings.TrimPrefix(v.Name, "."); n != "" {
		path = field.NewPath(n)
	}
	switch v.Code() {
	case openapierrors.RequiredFailCode:
		return field.Required(path, "")
	case openapierrors.EnumFailCode:
		var values []string
		for _, x := range v.Values {
			values = append(values, fmt.Sprint(x))
		}
		return field.NotSupported(path, v.Value, values)
	}
	value := v.Value
	if value == nil {
		value = ""
	}
	return field.Invalid(path, value, v.Error())
}
