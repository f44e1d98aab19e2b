package registry

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/opencontainers/go-digest"
)

// manifestRef parses the reference of a manifest URL. A malformed tag on a read or delete
// is simply unknown; on a push it is invalid.
func manifestRef(r *http.Request, rt route) (reference, error) {
	ref, err := parseReference(rt.arg)
	var e *Error
	if err != nil && errors.As(err, &e) && e.Code == CodeManifestInvalid && r.Method != http.MethodPut {
		e.Code = CodeManifestUnknown
	}
	return ref, err
}

// resolve returns the digest and stored media type of a manifest of rp by tag or digest.
func resolve(rp repo, ref reference) (digest.Digest, string, error) {
	d := ref.digest
	if ref.tag != "" {
		var err error
		if d, err = rp.resolveTag(ref.tag); err != nil {
			return "", "", err
		}
	}
	mt, err := rp.manifestType(d)
	return d, mt, err
}

// getManifest serves GET and HEAD of a manifest: the exact bytes and Content-Type pushed.
func (s *Server) getManifest(w http.ResponseWriter, r *http.Request, rt route) error {
	ref, err := manifestRef(r, rt)
	if err != nil {
		return err
	}
	d, mt, err := resolve(s.store.repo(rt.name), ref)
	if err != nil {
		return err
	}
	body, err := s.store.readBlob(d)
	if err != nil {
		return err
	}
	h := w.Header()
	h.Set("Content-Type", mt)
	h.Set("Docker-Content-Digest", d.String())
	h.Set("Etag", `"`+d.String()+`"`)
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(body))
	return nil
}

// putManifest validates and stores a manifest, then tags it when pushed by tag. Nothing
// is written unless the manifest parses and everything it references is in the repository.
func (s *Server) putManifest(w http.ResponseWriter, r *http.Request, rt route) error {
	ref, err := manifestRef(r, rt)
	if err != nil {
		return err
	}
	if r.ContentLength > maxManifestSize {
		return tooLarge()
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxManifestSize+1))
	if err != nil {
		return newError(CodeManifestInvalid, nil, "reading the manifest: %v", err)
	}
	if len(body) > maxManifestSize {
		return tooLarge()
	}
	ct := r.Header.Get("Content-Type")
	m, err := ParseManifest(ct, body)
	if err != nil {
		return err
	}
	if ct == "" {
		ct = m.MediaType
	}
	d := digest.FromBytes(body)
	if ref.digest != "" && ref.digest != d {
		return newError(CodeDigestInvalid, map[string]string{"digest": ref.digest.String(), "computed": d.String()},
			"the manifest's digest is %s, not %s", d, ref.digest)
	}
	rp := s.store.repo(rt.name)
	if err := s.checkReferences(rp, m); err != nil {
		return err
	}
	if err := s.store.putSmallBlob(d, body); err != nil {
		return err
	}
	if err := rp.linkManifest(d, ct); err != nil {
		return err
	}
	if m.Subject != nil {
		if err := rp.addReferrer(m.Subject.Digest, d); err != nil {
			return err
		}
		w.Header().Set("OCI-Subject", m.Subject.Digest.String())
	}
	if ref.tag != "" {
		if err := rp.setTag(ref.tag, d); err != nil {
			return err
		}
	}
	h := w.Header()
	h.Set("Location", location(rt.name, "manifests", d.String()))
	h.Set("Docker-Content-Digest", d.String())
	h.Set("Content-Length", "0")
	w.WriteHeader(http.StatusCreated)
	return nil
}

func tooLarge() error {
	return newError(CodeSizeInvalid, map[string]int{"limit": maxManifestSize},
		"manifests are limited to %d bytes", maxManifestSize).withStatus(http.StatusRequestEntityTooLarge)
}

// checkReferences requires the blobs of an image manifest (config and layers, except
// foreign layers) and the manifests of an index to be in the repository already.
func (s *Server) checkReferences(rp repo, m *Manifest) error {
	unknown := func(d Descriptor) error {
		return newError(CodeManifestBlobUnknown, map[string]string{"digest": d.Digest.String()},
			"manifest references %s, which is not in repository %s", d.Digest, rp.name)
	}
	blobs := m.Layers
	if m.Config != nil {
		blobs = append([]Descriptor{*m.Config}, m.Layers...)
	}
	for _, b := range blobs {
		if isForeignLayer(b) {
			continue
		}
		if b.Digest.Algorithm() != digest.SHA256 || !rp.hasBlob(b.Digest) {
			return unknown(b)
		}
		size, err := s.store.statBlob(b.Digest)
		if err != nil {
			return unknown(b)
		}
		if size != b.Size {
			return newError(CodeManifestInvalid, map[string]string{"digest": b.Digest.String()},
				"manifest says blob %s has %d bytes, it has %s", b.Digest, b.Size, strconv.FormatInt(size, 10))
		}
	}
	for _, c := range m.Manifests {
		if c.Digest.Algorithm() != digest.SHA256 {
			return unknown(c)
		}
		if _, err := rp.manifestType(c.Digest); err != nil {
			return unknown(c)
		}
	}
	return nil
}

// deleteManifest deletes a tag (DELETE by tag, spec v1.1) or a manifest with its tags and
// referrer links (DELETE by digest). Blobs stay until gc.
func (s *Server) deleteManifest(w http.ResponseWriter, r *http.Request, rt route) error {
	ref, err := manifestRef(r, rt)
	if err != nil {
		return err
	}
	rp := s.store.repo(rt.name)
	if ref.tag != "" {
		if err := rp.deleteTag(ref.tag); err != nil {
			return err
		}
	} else if err := rp.removeManifest(ref.digest); err != nil {
		return err
	}
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(http.StatusAccepted)
	return nil
}
