// Package version says which Berth this is and which protocol versions it speaks.
package version

// Version is set at build time with -ldflags "-X ...version.Version=...".
var Version = "0.1.0-dev"

const (
	// DockerAPI is the newest Docker Engine API version served.
	DockerAPI = "1.50"
	// Kubernetes is the Kubernetes API version spoken.
	Kubernetes = "v1.32.0"
)
