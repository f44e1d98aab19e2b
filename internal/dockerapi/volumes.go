package dockerapi

import (
	"net/http"
	"strings"
	"time"

	dsystem "github.com/moby/moby/api/types/system"
	dvolume "github.com/moby/moby/api/types/volume"

	"github.com/berth-project/berth/internal/engine/errdefs"
	"github.com/berth-project/berth/internal/engine/volume"
)

func (s *Server) volumeRoutes() {
	s.mux.HandleFunc("GET /volumes", s.listVolumes)
	s.mux.HandleFunc("POST /volumes/create", s.createVolume)
	s.mux.HandleFunc("GET /volumes/{name}", s.inspectVolume)
	s.mux.HandleFunc("DELETE /volumes/{name}", s.removeVolume)
	s.mux.HandleFunc("POST /volumes/prune", s.pruneVolumes)
}

func volumeView(v *volume.Volume, usage bool, refs int) dvolume.Volume {
	out := dvolume.Volume{
		Name: v.Name, Driver: "local", Mountpoint: v.Mountpoint, Scope: "local",
		CreatedAt: v.CreatedAt.Format(time.RFC3339), Labels: v.Labels, Options: v.Options,
	}
	if out.Labels == nil {
		out.Labels = map[string]string{}
	}
	if out.Options == nil {
		out.Options = map[string]string{}
	}
	if v.Anonymous {
		out.Labels["com.docker.volume.anonymous"] = ""
	}
	if usage {
		out.UsageData = &dvolume.UsageData{Size: v.Size(), RefCount: int64(refs)}
	}
	return out
}

func (s *Server) listVolumes(w http.ResponseWriter, r *http.Request) {
	f, err := filters(r)
	if err != nil {
		writeError(w, err)
		return
	}
	vs, err := s.e.Volumes()
	if err != nil {
		writeError(w, err)
		return
	}
	out := dvolume.ListResponse{Volumes: []dvolume.Volume{}, Warnings: []string{}}
	for _, v := range vs {
		if names := f["name"]; len(names) > 0 && !anyMatch(names, func(n string) bool { return strings.Contains(v.Name, n) }) {
			continue
		}
		if d := f["dangling"]; len(d) > 0 {
			inUse := len(s.e.VolumeUsers(v.Name)) > 0
			if (d[0] == "true" || d[0] == "1") == inUse {
				continue
			}
		}
		if !matchLabels(v.Labels, f["label"]) {
			continue
		}
		out.Volumes = append(out.Volumes, volumeView(v, false, 0))
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) createVolume(w http.ResponseWriter, r *http.Request) {
	var req dvolume.CreateRequest
	if err := decodeBody(r, &req); err != nil {
		writeError(w, err)
		return
	}
	if req.Driver != "" && req.Driver != "local" {
		writeError(w, errdefs.NotFound("plugin \""+req.Driver+"\" not found"))
		return
	}
	v, err := s.e.VolumeCreate(req.Name, req.Labels, req.DriverOpts)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, volumeView(v, false, 0))
}

func (s *Server) inspectVolume(w http.ResponseWriter, r *http.Request) {
	v, err := s.e.Volume(r.PathValue("name"))
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, volumeView(v, false, 0))
}

func (s *Server) removeVolume(w http.ResponseWriter, r *http.Request) {
	if err := s.e.VolumeRemove(r.PathValue("name"), boolValue(r, "force")); err != nil {
		writeError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) pruneVolumes(w http.ResponseWriter, r *http.Request) {
	f, err := filters(r)
	if err != nil {
		writeError(w, err)
		return
	}
	all := len(f["all"]) > 0 && (f["all"][0] == "true" || f["all"][0] == "1")
	del, space, err := s.e.VolumePrune(all, func(v *volume.Volume) bool { return matchLabels(v.Labels, f["label"]) })
	if err != nil {
		writeError(w, err)
		return
	}
	if del == nil {
		del = []string{}
	}
	writeJSON(w, http.StatusOK, dvolume.PruneReport{VolumesDeleted: del, SpaceReclaimed: space})
}

func (s *Server) systemDF(w http.ResponseWriter, r *http.Request) {
	var du dsystem.DiskUsage
	_ = du
	used := map[string]int64{}
	for _, c := range s.e.List() {
		used[c.Image]++
	}
	images := []any{}
	for _, img := range s.e.Images().List() {
		images = append(images, s.imageSummary(img, used))
	}
	var layers int64
	for _, img := range s.e.Images().List() {
		layers += s.e.Images().Size(img)
	}
	ctrs := []any{}
	for _, c := range s.e.List() {
		sum := s.summary(c)
		sum.SizeRw = s.e.RootfsSize(c)
		ctrs = append(ctrs, sum)
	}
	vols := []any{}
	vs, _ := s.e.Volumes()
	for _, v := range vs {
		vols = append(vols, volumeView(v, true, len(s.e.VolumeUsers(v.Name))))
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"LayersSize": layers, "Images": images, "Containers": ctrs, "Volumes": vols, "BuildCache": []any{},
	})
}
