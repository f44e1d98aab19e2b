package openapi

import (
	"testing"

	"k8s.io/kube-openapi/pkg/common"
	"k8s.io/kube-openapi/pkg/validation/spec"
)

// Every type a definition depends on is defined too: a group added to packages.txt whose
// types point into a package not listed would break every document that reaches it.
func TestDefinitionsAreClosed(t *testing.T) {
	defs := GetOpenAPIDefinitions(func(path string) spec.Ref {
		return spec.MustCreateRef("#/definitions/" + common.EscapeJsonPointer(path))
	})
	for name, d := range defs {
		for _, dep := range d.Dependencies {
			if _, ok := defs[dep]; !ok {
				t.Errorf("%s depends on %s, which is not generated: add its package to packages.txt", name, dep)
			}
		}
	}
}
