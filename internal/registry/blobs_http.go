package registry

import (
	"net/http"
	"time"
)

// getBlob serves GET and HEAD of a blob linked into the repository. http.ServeContent on
// the file gives Range, conditional requests and, over plain HTTP, sendfile.
func (s *Server) getBlob(w http.ResponseWriter, r *http.Request, rt route) error {
	d, err := parseDigest(rt.arg)
	if err != nil {
		return err
	}
	if !s.store.repo(rt.name).hasBlob(d) {
		return newError(CodeBlobUnknown, map[string]string{"digest": d.String()}, "blob %s unknown to repository %s", d, rt.name)
	}
	f, err := s.store.openBlob(d)
	if err != nil {
		return err
	}
	defer f.Close()
	h := w.Header()
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Docker-Content-Digest", d.String())
	h.Set("Etag", `"`+d.String()+`"`)
	// Blobs never change: caches may keep them.
	h.Set("Cache-Control", "max-age=31536000")
	http.ServeContent(w, r, "", time.Time{}, f)
	return nil
}

// deleteBlob unlinks a blob from the repository. The data stays until gc finds nothing
// else that references it.
func (s *Server) deleteBlob(w http.ResponseWriter, r *http.Request, rt route) error {
	d, err := parseDigest(rt.arg)
	if err != nil {
		return err
	}
	if err := s.store.repo(rt.name).unlinkBlob(d); err != nil {
		return err
	}
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(http.StatusAccepted)
	return nil
}
