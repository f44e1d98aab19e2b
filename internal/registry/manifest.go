package registry

import (
	"bytes"
	"encoding/json"
	"io"
	"mime"

	"github.com/opencontainers/go-digest"
)

// Manifest media types the registry accepts.
const (
	MediaTypeOCIManifest    = "application/vnd.oci.image.manifest.v1+json"
	MediaTypeOCIIndex       = "application/vnd.oci.image.index.v1+json"
	MediaTypeDockerManifest = "application/vnd.docker.distribution.manifest.v2+json"
	MediaTypeDockerList     = "application/vnd.docker.distribution.manifest.list.v2+json"
)

// maxManifestSize is the largest manifest accepted, as the spec suggests (4 MiB).
const maxManifestSize = 4 << 20

// Descriptor is an OCI content descriptor, as manifests reference content and as the
// referrers API lists manifests.
type Descriptor struct {
	MediaType    string            `json:"mediaType"`
	Digest       digest.Digest     `json:"digest"`
	Size         int64             `json:"size"`
	URLs         []string          `json:"urls,omitempty"`
	ArtifactType string            `json:"artifactType,omitempty"`
	Annotations  map[string]string `json:"annotations,omitempty"`
}

// Manifest is what the registry needs to know of a pushed manifest: what it references.
type Manifest struct {
	// MediaType is the effective media type: the Content-Type it was pushed with, which
	// agrees with the body's mediaType field when that is present.
	MediaType    string
	ArtifactType string
	Subject      *Descriptor
	Annotations  map[string]string
	// Config and Layers are set for image manifests: the blobs they need.
	Config *Descriptor
	Layers []Descriptor
	// Manifests is set for indexes and manifest lists: the manifests they need.
	Manifests []Descriptor
}

// IsIndex reports whether the manifest lists other manifests.
func (m *Manifest) IsIndex() bool {
	return m.MediaType == MediaTypeOCIIndex || m.MediaType == MediaTypeDockerList
}

// rawManifest is the union of the image manifest and index JSON fields we read.
type rawManifest struct {
	SchemaVersion *int              `json:"schemaVersion"`
	MediaType     string            `json:"mediaType"`
	ArtifactType  string            `json:"artifactType"`
	Config        *Descriptor       `json:"config"`
	Layers        []Descriptor      `json:"layers"`
	Manifests     []Descriptor      `json:"manifests"`
	Subject       *Descriptor       `json:"subject"`
	Annotations   map[string]string `json:"annotations"`
}

// ParseManifest validates a manifest body pushed with contentType and returns what it
// references. Every failure is MANIFEST_INVALID (or DIGEST_INVALID for a malformed digest
// in a descriptor, as the reference registry answers).
func ParseManifest(contentType string, body []byte) (*Manifest, error) {
	invalid := func(format string, args ...any) error {
		return newError(CodeManifestInvalid, nil, "manifest invalid: "+format, args...)
	}
	if len(body) > maxManifestSize {
		return nil, invalid("larger than %d bytes", maxManifestSize)
	}
	var raw rawManifest
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&raw); err != nil {
		return nil, invalid("%v", err)
	}
	if err := dec.Decode(&struct{}{}); err != io.EOF {
		return nil, invalid("trailing data after the JSON object")
	}
	mt := contentType
	if mt != "" {
		parsed, _, err := mime.ParseMediaType(contentType)
		if err != nil {
			return nil, invalid("Content-Type %q: %v", contentType, err)
		}
		mt = parsed
	}
	switch {
	case mt == "":
		mt = raw.MediaType
	case raw.MediaType != "" && raw.MediaType != mt:
		return nil, invalid("mediaType %q does not match Content-Type %q", raw.MediaType, mt)
	}
	if raw.SchemaVersion == nil || *raw.SchemaVersion != 2 {
		return nil, invalid("schemaVersion must be 2")
	}
	m := &Manifest{MediaType: mt, ArtifactType: raw.ArtifactType, Annotations: raw.Annotations}
	if raw.Subject != nil {
		if err := checkDescriptor("subject", raw.Subject); err != nil {
			return nil, err
		}
		m.Subject = raw.Subject
	}
	switch mt {
	case MediaTypeDockerManifest, MediaTypeOCIManifest:
		if mt == MediaTypeDockerManifest && raw.MediaType == "" {
			return nil, invalid("a Docker manifest must carry its mediaType")
		}
		if raw.Manifests != nil {
			return nil, invalid("an image manifest has no manifests field")
		}
		if raw.Config == nil {
			return nil, invalid("config is missing")
		}
		if err := checkDescriptor("config", raw.Config); err != nil {
			return nil, err
		}
		for i := range raw.Layers {
			if err := checkDescriptor("layer", &raw.Layers[i]); err != nil {
				return nil, err
			}
		}
		m.Config, m.Layers = raw.Config, raw.Layers
	case MediaTypeDockerList, MediaTypeOCIIndex:
		if mt == MediaTypeDockerList && raw.MediaType == "" {
			return nil, invalid("a Docker manifest list must carry its mediaType")
		}
		if raw.Config != nil || raw.Layers != nil {
			return nil, invalid("an index has no config or layers")
		}
		for i := range raw.Manifests {
			if err := checkDescriptor("manifest", &raw.Manifests[i]); err != nil {
				return nil, err
			}
		}
		m.Manifests = raw.Manifests
	case "":
		return nil, invalid("no media type (set Content-Type)")
	default:
		return nil, invalid("unsupported media type %q", mt)
	}
	return m, nil
}

// checkDescriptor validates a descriptor's digest, size and media type.
func checkDescriptor(what string, d *Descriptor) error {
	if err := d.Digest.Validate(); err != nil {
		return newError(CodeDigestInvalid, map[string]string{"digest": d.Digest.String()}, "%s digest %q: %v", what, d.Digest, err)
	}
	if d.Size < 0 {
		return newError(CodeManifestInvalid, nil, "manifest invalid: %s %s has a negative size", what, d.Digest)
	}
	if d.MediaType == "" {
		return newError(CodeManifestInvalid, nil, "manifest invalid: %s %s has no mediaType", what, d.Digest)
	}
	return nil
}

// isForeignLayer reports whether a layer lives outside the registry (Windows base layers):
// such layers are not required to be pushed.
func isForeignLayer(d Descriptor) bool {
	switch d.MediaType {
	case "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
		"application/vnd.oci.image.layer.nondistributable.v1.tar",
		"application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
		"application/vnd.oci.image.layer.nondistributable.v1.tar+zstd":
		return len(d.URLs) > 0
	}
	return false
}

// artifactType is the artifact type the referrers API reports for a manifest: its own
// artifactType, else (image manifests) its config's media type.
func (m *Manifest) artifactType() string {
	if m.ArtifactType != "" {
		return m.ArtifactType
	}
	if m.Config != nil {
		return m.Config.MediaType
	}
	return ""
}
