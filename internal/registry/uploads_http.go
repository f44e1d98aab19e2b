package registry

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/opencontainers/go-digest"
)

// startUpload serves POST /v2/NAME/blobs/uploads/: a cross-repository mount (?mount=&from=),
// a monolithic upload (?digest=, the blob is the body), or a new session for PATCH/PUT.
func (s *Server) startUpload(w http.ResponseWriter, r *http.Request, rt route) error {
	q := r.URL.Query()
	if m := q.Get("mount"); m != "" {
		d, err := parseDigest(m)
		if err != nil {
			return err
		}
		if ok, err := s.mount(rt.name, q.Get("from"), d, grantOf(r.Context())); err != nil {
			return err
		} else if ok {
			return blobCreated(w, rt.name, d)
		}
		// The spec: when the blob cannot be mounted, start an ordinary upload instead.
	}
	var want digest.Digest
	if dg := q.Get("digest"); dg != "" {
		var err error
		if want, err = parseDigest(dg); err != nil {
			return err
		}
	}
	u, err := s.uploads.start(rt.name)
	if err != nil {
		return err
	}
	defer u.unlock()
	if want == "" {
		return uploadStatus(w, rt.name, u, http.StatusAccepted)
	}
	if _, err := u.append(r.Body); err != nil {
		s.uploads.finish(u)
		return err
	}
	return s.complete(w, rt.name, u, want)
}

// mount links blob d of repository from into name, if from has it and the client may pull
// from there. It reports false (not an error) when the blob cannot be mounted.
func (s *Server) mount(name, from string, d digest.Digest, g grant) (bool, error) {
	if from == "" || !validName(from) || !g.allows("repository", from, "pull") {
		return false, nil
	}
	if !s.store.repo(from).hasBlob(d) {
		return false, nil
	}
	if _, err := s.store.statBlob(d); err != nil {
		return false, nil
	}
	if err := s.store.repo(name).linkBlob(d); err != nil {
		return false, err
	}
	return true, nil
}

// uploadStatus serves GET of an upload: how much the registry has, for resuming.
func (s *Server) uploadStatus(w http.ResponseWriter, r *http.Request, rt route) error {
	u, err := s.uploads.get(rt.name, rt.arg)
	if err != nil {
		return err
	}
	defer u.unlock()
	return uploadStatus(w, rt.name, u, http.StatusNoContent)
}

// patchUpload appends a chunk. With Content-Range, the chunk must start where the upload
// ends (else 416, as the spec asks).
func (s *Server) patchUpload(w http.ResponseWriter, r *http.Request, rt route) error {
	u, err := s.uploads.get(rt.name, rt.arg)
	if err != nil {
		return err
	}
	defer u.unlock()
	if err := checkContentRange(r, u); err != nil {
		return err
	}
	if _, err := u.append(r.Body); err != nil {
		return err
	}
	return uploadStatus(w, rt.name, u, http.StatusAccepted)
}

// finishUpload serves PUT ?digest=: an optional last chunk, then verification and commit.
func (s *Server) finishUpload(w http.ResponseWriter, r *http.Request, rt route) error {
	u, err := s.uploads.get(rt.name, rt.arg)
	if err != nil {
		return err
	}
	defer u.unlock()
	dg := r.URL.Query().Get("digest")
	if dg == "" {
		return newError(CodeDigestInvalid, nil, "the digest query parameter is required to complete an upload")
	}
	want, err := parseDigest(dg)
	if err != nil {
		return err
	}
	if err := checkContentRange(r, u); err != nil {
		return err
	}
	if _, err := u.append(r.Body); err != nil {
		return err
	}
	return s.complete(w, rt.name, u, want)
}

// complete verifies u against want, moves it into the blob store, links it into the
// repository and answers 201. The session ends whether or not the digest matched.
func (s *Server) complete(w http.ResponseWriter, name string, u *upload, want digest.Digest) error {
	err := u.commit(s.store, want)
	s.uploads.finish(u)
	if err != nil {
		return err
	}
	if err := s.store.repo(name).linkBlob(want); err != nil {
		return err
	}
	return blobCreated(w, name, want)
}

// cancelUpload serves DELETE of an upload.
func (s *Server) cancelUpload(w http.ResponseWriter, r *http.Request, rt route) error {
	u, err := s.uploads.get(rt.name, rt.arg)
	if err != nil {
		return err
	}
	defer u.unlock()
	s.uploads.finish(u)
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func blobCreated(w http.ResponseWriter, name string, d digest.Digest) error {
	h := w.Header()
	h.Set("Location", location(name, "blobs", d.String()))
	h.Set("Docker-Content-Digest", d.String())
	h.Set("Content-Length", "0")
	w.WriteHeader(http.StatusCreated)
	return nil
}

// uploadStatus writes the headers a client resumes from. Range is inclusive; an empty
// upload reports "0-0", as the reference registry does.
func uploadStatus(w http.ResponseWriter, name string, u *upload, status int) error {
	h := w.Header()
	h.Set("Location", location(name, "blobs", "uploads", u.id))
	h.Set("Docker-Upload-UUID", u.id)
	h.Set("Range", fmt.Sprintf("0-%d", max(u.size-1, 0)))
	h.Set("Content-Length", "0")
	w.WriteHeader(status)
	return nil
}

// checkContentRange enforces a chunk's Content-Range ("START-END", inclusive; "bytes
// START-END/TOTAL" is also accepted): it must start at the upload's current size, and agree
// with Content-Length when both are given.
func checkContentRange(r *http.Request, u *upload) error {
	cr := r.Header.Get("Content-Range")
	if cr == "" {
		return nil
	}
	start, end, ok := parseContentRange(cr)
	if !ok {
		return newError(CodeBlobUploadInvalid, map[string]string{"Content-Range": cr}, "malformed Content-Range %q", cr).
			withStatus(http.StatusRequestedRangeNotSatisfiable)
	}
	if start != u.size {
		return newError(CodeBlobUploadInvalid, map[string]int64{"offset": u.size}, "chunk starts at %d but the upload has %d bytes", start, u.size).
			withStatus(http.StatusRequestedRangeNotSatisfiable)
	}
	if r.ContentLength >= 0 && r.ContentLength != end-start+1 {
		return newError(CodeSizeInvalid, nil, "Content-Range %q does not match Content-Length %d", cr, r.ContentLength)
	}
	return nil
}

func parseContentRange(s string) (start, end int64, ok bool) {
	s = strings.TrimPrefix(s, "bytes ")
	s, _, _ = strings.Cut(s, "/")
	a, b, found := strings.Cut(s, "-")
	if !found {
		return 0, 0, false
	}
	start, err1 := strconv.ParseInt(a, 10, 64)
	end, err2 := strconv.ParseInt(b, 10, 64)
	if err1 != nil || err2 != nil || start < 0 || end < start {
		return 0, 0, false
	}
	return start, end, true
}
