package dockerapi

import (
	"fmt"
	"net/http"
	"net/url"
	"path"
	"strings"
	"time"

	dimage "github.com/moby/moby/api/types/image"
	"github.com/moby/moby/api/types/storage"

	"github.com/berth-project/berth/internal/engine"
	"github.com/berth-project/berth/internal/engine/errdefs"
	"github.com/berth-project/berth/internal/engine/image"
)

func (s *Server) imageRoutes() {
	s.mux.HandleFunc("POST /images/create", s.createImage)
	s.mux.HandleFunc("GET /images/json", s.listImages)
	s.mux.HandleFunc("POST /images/load", s.loadImages)
	s.mux.HandleFunc("GET /images/get", s.saveImages)
	s.mux.HandleFunc("POST /images/prune", s.pruneImages)
	// Image names contain slashes, so the rest is routed by hand.
	s.mux.HandleFunc("/images/", s.imageByName)
}

func (s *Server) imageByName(w http.ResponseWriter, r *http.Request) {
	rest := strings.TrimPrefix(r.URL.Path, "/images/")
	name, action := rest, ""
	if i := strings.LastIndex(rest, "/"); i >= 0 {
		switch rest[i+1:] {
		case "json", "tag", "history", "get", "push":
			name, action = rest[:i], rest[i+1:]
		}
	}
	switch {
	case r.Method == http.MethodGet && action == "json":
		s.inspectImage(w, r, name)
	case r.Method == http.MethodDelete && action == "":
		s.removeImage(w, r, name)
	case r.Method == http.MethodPost && action == "tag":
		s.tagImage(w, r, name)
	case r.Method == http.MethodGet && action == "history":
		s.imageHistory(w, r, name)
	case r.Method == http.MethodGet && action == "get":
		r.URL.RawQuery = url.Values{"names": {name}}.Encode()
		s.saveImages(w, r)
	case r.Method == http.MethodPost && action == "push":
		s.pushImage(w, r, name)
	default:
		writeError(w, errdefs.NotFound(fmt.Sprintf("page not found: %s %s", r.Method, r.URL.Path)))
	}
}

func (s *Server) createImage(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if from := q.Get("fromImage"); from != "" {
		s.pullImage(w, r, from)
		return
	}
	if q.Get("fromSrc") != "-" {
		writeError(w, errdefs.Invalid("importing from a URL is not supported: use `docker import - ` with a tar on stdin"))
		return
	}
	ref := q.Get("repo")
	if ref != "" && q.Get("tag") != "" {
		ref += ":" + q.Get("tag")
	}
	if ref != "" {
		if _, err := image.ParseReference(ref); err != nil {
			writeError(w, err)
			return
		}
	}
	var changes []string
	for _, c := range q["changes"] {
		changes = append(changes, strings.Split(c, "\n")...)
	}
	img, err := s.e.Import(r.Context(), r.Body, engine.ImportOptions{Ref: ref, Changes: changes, Message: q.Get("message"), Source: "-"})
	if err != nil {
		writeError(w, err)
		return
	}
	js := newJSONStream(w)
	js.send(map[string]string{"status": img.ID.String()})
}

func (s *Server) imageSummary(img *image.Image, containers map[string]int64) dimage.Summary {
	sum := dimage.Summary{
		ID: img.ID.String(), RepoTags: []string{}, RepoDigests: []string{}, ParentID: img.Parent.String(),
		Size: s.e.Images().Size(img), SharedSize: -1, Containers: containers[img.ID.String()],
		Labels: img.Config.Config.Labels,
	}
	if containers == nil {
		sum.Containers = -1
	}
	if img.Config.Created != nil {
		sum.Created = img.Config.Created.Unix()
	}
	for _, r := range s.e.Images().RefsOf(img.ID) {
		sum.RepoTags = append(sum.RepoTags, image.Familiar(r))
	}
	for _, r := range s.e.Images().RepoDigestsOf(img.ID) {
		sum.RepoDigests = append(sum.RepoDigests, image.Familiar(r))
	}
	if sum.Labels == nil {
		sum.Labels = map[string]string{}
	}
	return sum
}

func (s *Server) listImages(w http.ResponseWriter, r *http.Request) {
	f, err := filters(r, "dangling", "reference", "label", "before", "since", "until")
	if err != nil {
		writeError(w, err)
		return
	}
	all := boolValue(r, "all")
	// before=IMAGE and since=IMAGE keep images created before or after that one.
	var before, since *time.Time
	for k, dst := range map[string]**time.Time{"before": &before, "since": &since} {
		for _, v := range f[k] {
			img, err := s.e.Images().Get(v)
			if err != nil {
				writeError(w, err)
				return
			}
			*dst = img.Config.Created
		}
	}
	out := []dimage.Summary{}
	for _, img := range s.e.Images().List() {
		refs := s.e.Images().RefsOf(img.ID)
		children := s.e.Images().Children(img.ID)
		if len(refs) == 0 && len(children) > 0 && !all {
			continue // an intermediate image
		}
		dangling := len(refs) == 0
		if d := f["dangling"]; len(d) > 0 {
			want := d[0] == "true" || d[0] == "1"
			if want != dangling {
				continue
			}
		}
		if !matchLabels(img.Config.Config.Labels, f["label"]) {
			continue
		}
		if c := img.Config.Created; c != nil && ((before != nil && !c.Before(*before)) || (since != nil && !c.After(*since))) {
			continue
		}
		sum := s.imageSummary(img, nil)
		if pats := f["reference"]; len(pats) > 0 {
			// Only the tags that match are listed, as Docker does: `docker images -q
			// bb:1.0` prints the image once even when it has other tags.
			var matched []string
			for _, ref := range refs {
				fam := image.Familiar(ref)
				name, _, _ := strings.Cut(fam, ":")
				for _, p := range pats {
					m1, _ := path.Match(p, fam)
					m2, _ := path.Match(p, name)
					m3, _ := path.Match(p, ref)
					if m1 || m2 || m3 {
						matched = append(matched, fam)
						break
					}
				}
			}
			if len(matched) == 0 {
				continue
			}
			sum.RepoTags = matched
		}
		out = append(out, sum)
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) inspectImage(w http.ResponseWriter, r *http.Request, name string) {
	img, err := s.e.Images().Get(name)
	if err != nil {
		writeError(w, err)
		return
	}
	c := img.Config
	resp := dimage.InspectResponse{
		ID: img.ID.String(), RepoTags: []string{}, RepoDigests: []string{},
		Author: c.Author, Config: &c.Config, Architecture: c.Architecture, Os: c.OS, Variant: c.Variant,
		Size:        s.e.Images().Size(img),
		GraphDriver: &storage.DriverData{Name: "overlay2", Data: map[string]string{}},
		RootFS:      dimage.RootFS{Type: "layers"},
	}
	if c.Created != nil {
		resp.Created = c.Created.UTC().Format(time.RFC3339Nano)
	}
	if len(c.History) > 0 {
		resp.Comment = c.History[len(c.History)-1].Comment
	}
	for _, l := range c.RootFS.DiffIDs {
		resp.RootFS.Layers = append(resp.RootFS.Layers, l.String())
	}
	for _, r := range s.e.Images().RepoDigestsOf(img.ID) {
		resp.RepoDigests = append(resp.RepoDigests, image.Familiar(r))
	}
	for _, ref := range s.e.Images().RefsOf(img.ID) {
		resp.RepoTags = append(resp.RepoTags, image.Familiar(ref))
	}
	writeJSON(w, http.StatusOK, resp)
}

func (s *Server) removeImage(w http.ResponseWriter, r *http.Request, name string) {
	res, err := s.e.RemoveImage(r.Context(), name, boolValue(r, "force"), boolValue(r, "noprune"))
	if err != nil {
		writeError(w, err)
		return
	}
	out := []dimage.DeleteResponse{}
	for _, d := range res {
		out = append(out, dimage.DeleteResponse{Untagged: d.Untagged, Deleted: d.Deleted})
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) tagImage(w http.ResponseWriter, r *http.Request, name string) {
	q := r.URL.Query()
	ref := q.Get("repo")
	if q.Get("tag") != "" {
		ref += ":" + q.Get("tag")
	}
	if _, err := image.ParseReference(ref); err != nil {
		writeError(w, err)
		return
	}
	if err := s.e.Tag(name, ref); err != nil {
		writeError(w, err)
		return
	}
	w.WriteHeader(http.StatusCreated)
}

func (s *Server) imageHistory(w http.ResponseWriter, r *http.Request, name string) {
	h, err := s.e.History(name)
	if err != nil {
		writeError(w, err)
		return
	}
	out := []dimage.HistoryResponseItem{}
	for _, it := range h {
		tags := it.Tags
		if tags == nil {
			tags = []string{}
		}
		out = append(out, dimage.HistoryResponseItem{ID: it.ID, Created: it.Created, CreatedBy: it.CreatedBy, Tags: tags, Size: it.Size, Comment: it.Comment})
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) loadImages(w http.ResponseWriter, r *http.Request) {
	var lines []string
	err := s.e.Load(r.Context(), r.Body, func(line string) { lines = append(lines, line) })
	if err != nil {
		writeError(w, err)
		return
	}
	js := newJSONStream(w)
	for _, l := range lines {
		js.send(map[string]string{"stream": l + "\n"})
	}
}

func (s *Server) saveImages(w http.ResponseWriter, r *http.Request) {
	names := r.URL.Query()["names"]
	if len(names) == 0 {
		writeError(w, errdefs.Invalid("no images named"))
		return
	}
	for _, n := range names {
		if _, err := s.e.Images().Get(n); err != nil {
			writeError(w, err)
			return
		}
	}
	w.Header().Set("Content-Type", "application/x-tar")
	s.e.Save(r.Context(), names, w)
}

func (s *Server) pruneImages(w http.ResponseWriter, r *http.Request) {
	f, err := filters(r)
	if err != nil {
		writeError(w, err)
		return
	}
	all := false
	if d := f["dangling"]; len(d) > 0 && (d[0] == "false" || d[0] == "0") {
		all = true
	}
	res, space := s.e.PruneImages(r.Context(), all, func(img *image.Image) bool {
		return matchLabels(img.Config.Config.Labels, f["label"])
	})
	rep := dimage.PruneReport{ImagesDeleted: []dimage.DeleteResponse{}, SpaceReclaimed: space}
	for _, d := range res {
		rep.ImagesDeleted = append(rep.ImagesDeleted, dimage.DeleteResponse{Untagged: d.Untagged, Deleted: d.Deleted})
	}
	writeJSON(w, http.StatusOK, rep)
}
