package registry

import (
	"net/http"

	"github.com/opencontainers/go-digest"
)

// index is the OCI image index the referrers API answers with.
type index struct {
	SchemaVersion int          `json:"schemaVersion"`
	MediaType     string       `json:"mediaType"`
	Manifests     []Descriptor `json:"manifests"`
}

// referrersList serves GET /v2/NAME/referrers/DIGEST[?artifactType=T]: an index of the
// manifests whose subject is DIGEST. The spec forbids 404 here: an unknown subject, or an
// unknown repository, has an empty list.
func (s *Server) referrersList(w http.ResponseWriter, r *http.Request, rt route) error {
	subject, err := digest.Parse(rt.arg)
	if err != nil {
		return newError(CodeDigestInvalid, map[string]string{"digest": rt.arg}, "invalid digest %q: %v", rt.arg, err)
	}
	filter := r.URL.Query().Get("artifactType")
	refs, err := s.referrers(s.store.repo(rt.name), subject)
	if err != nil {
		return err
	}
	out := index{SchemaVersion: 2, MediaType: MediaTypeOCIIndex, Manifests: []Descriptor{}}
	for _, d := range refs {
		if filter == "" || d.ArtifactType == filter {
			out.Manifests = append(out.Manifests, d)
		}
	}
	if filter != "" {
		w.Header().Set("OCI-Filters-Applied", "artifactType")
	}
	return writeJSON(w, MediaTypeOCIIndex, out)
}

// referrers describes the manifests of rp whose subject is subject, in digest order.
// Links to manifests deleted since are skipped.
func (s *Server) referrers(rp repo, subject digest.Digest) ([]Descriptor, error) {
	ds, err := rp.referrers(subject)
	if err != nil {
		return nil, err
	}
	var out []Descriptor
	for _, d := range ds {
		mt, err := rp.manifestType(d)
		if err != nil {
			continue
		}
		body, err := s.store.readBlob(d)
		if err != nil {
			continue
		}
		m, err := ParseManifest(mt, body)
		if err != nil {
			continue
		}
		out = append(out, Descriptor{
			MediaType:    m.MediaType,
			Digest:       d,
			Size:         int64(len(body)),
			ArtifactType: m.artifactType(),
			Annotations:  m.Annotations,
		})
	}
	return out, nil
}
