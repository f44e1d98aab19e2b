// Package openapi holds the OpenAPI definitions of every type the API server serves,
// generated from their Go types by kube-openapi's openapi-gen (GetOpenAPIDefinitions).
// Run `go generate ./internal/apiserver/openapi` after adding a group.
package openapi

//go:generate sh -c "go tool openapi-gen --go-header-file /dev/null --output-dir . --output-pkg github.com/berth-project/berth/internal/apiserver/openapi --output-file zz_generated.openapi.go --report-filename /dev/null $(cat packages.txt)"
