package dockerapi

import (
	"encoding/json"
	"net/http"
	"os"
	goruntime "runtime"
	"strings"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/events"
	"github.com/moby/moby/api/types/system"
	"golang.org/x/sys/unix"
)

func (s *Server) systemRoutes() {
	s.mux.HandleFunc("GET /_ping", s.ping)
	s.mux.HandleFunc("HEAD /_ping", s.ping)
	s.mux.HandleFunc("GET /version", s.getVersion)
	s.mux.HandleFunc("GET /info", s.getInfo)
	s.mux.HandleFunc("GET /events", s.getEvents)
	s.mux.HandleFunc("GET /system/df", s.systemDF)
}

func (s *Server) ping(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-cache, no-store, must-revalidate")
	w.Header().Set("Pragma", "no-cache")
	w.Header().Set("Builder-Version", "1")
	w.Header().Set("Docker-Experimental", "false")
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if r.Method == http.MethodHead {
		w.Header().Set("Content-Length", "0")
		return
	}
	w.Write([]byte("OK"))
}

func kernelVersion() string {
	var u unix.Utsname
	if unix.Uname(&u) != nil {
		return ""
	}
	return unix.ByteSliceToString(u.Release[:])
}

func (s *Server) getVersion(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, system.VersionResponse{
		Platform:      system.PlatformInfo{Name: "Berth Engine"},
		Version:       s.version,
		APIVersion:    APIVersion,
		MinAPIVersion: MinAPIVersion,
		Os:            "linux",
		Arch:          goruntime.GOARCH,
		GoVersion:     goruntime.Version(),
		KernelVersion: kernelVersion(),
		Components: []system.ComponentVersion{{Name: "Engine", Version: s.version, Details: map[string]string{
			"ApiVersion": APIVersion, "MinAPIVersion": MinAPIVersion, "Os": "linux", "Arch": goruntime.GOARCH,
			"GoVersion": goruntime.Version(), "KernelVersion": kernelVersion(),
		}}},
	})
}

func osName() string {
	data, _ := os.ReadFile("/etc/os-release")
	for _, l := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(l, "PRETTY_NAME="); ok {
			return strings.Trim(v, `"`)
		}
	}
	return "Linux"
}

func (s *Server) getInfo(w http.ResponseWriter, r *http.Request) {
	in := s.e.Info()
	host, _ := os.Hostname()
	var si unix.Sysinfo_t
	unix.Sysinfo(&si)
	cgv := "1"
	if _, err := os.Stat("/sys/fs/cgroup/cgroup.controllers"); err == nil {
		cgv = "2"
	}
	writeJSON(w, http.StatusOK, system.Info{
		ID: "berth", Containers: in.Containers, ContainersRunning: in.Running,
		ContainersPaused: in.Paused, ContainersStopped: in.Stopped, Images: in.Images,
		Driver: "overlay2", DriverStatus: [][2]string{{"Backing Filesystem", "extfs"}},
		MemoryLimit: true, SwapLimit: false, CPUCfsPeriod: true, CPUCfsQuota: true, CPUShares: true,
		CPUSet: true, PidsLimit: true, IPv4Forwarding: true, NGoroutines: goruntime.NumGoroutine(),
		SystemTime: time.Now().Format(time.RFC3339Nano), LoggingDriver: "json-file",
		CgroupDriver: "cgroupfs", CgroupVersion: cgv, KernelVersion: kernelVersion(),
		OperatingSystem: osName(), OSType: "linux", Architecture: goruntime.GOARCH,
		IndexServerAddress: "https://index.docker.io/v1/", NCPU: goruntime.NumCPU(),
		MemTotal: int64(si.Totalram) * int64(si.Unit), DockerRootDir: in.DataDir, Name: host,
		ServerVersion: s.version, DefaultRuntime: "berth",
		Runtimes:           map[string]system.RuntimeWithStatus{"berth": {Runtime: system.Runtime{Path: "berth-shim"}}},
		Isolation:          container.IsolationDefault,
		SecurityOptions:    []string{"name=no-new-privileges"},
		LiveRestoreEnabled: true,
	})
}

func (s *Server) getEvents(w http.ResponseWriter, r *http.Request) {
	f, err := filters(r)
	if err != nil {
		writeError(w, err)
		return
	}
	since := parseTime(r.URL.Query().Get("since"))
	until := parseTime(r.URL.Query().Get("until"))
	past, ch, cancel := s.e.Subscribe(since)
	defer cancel()
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	fw := newFlushWriter(w)
	fw.Flush() // the CLI waits for headers before it reports anything
	enc := json.NewEncoder(fw)
	match := func(m events.Message) bool {
		if t := f["type"]; len(t) > 0 && !contains(t, string(m.Type)) {
			return false
		}
		if ev := f["event"]; len(ev) > 0 && !contains(ev, string(m.Action)) {
			return false
		}
		if c := f["container"]; len(c) > 0 && (m.Type != events.ContainerEventType || !(contains(c, m.Actor.ID) || contains(c, m.Actor.Attributes["name"]))) {
			return false
		}
		return true
	}
	for _, m := range past {
		if !until.IsZero() && m.TimeNano > until.UnixNano() {
			return
		}
		if match(m) {
			enc.Encode(m)
		}
	}
	var deadline <-chan time.Time
	if !until.IsZero() {
		deadline = time.After(time.Until(until))
	}
	for {
		select {
		case m := <-ch:
			if match(m) {
				if enc.Encode(m) != nil {
					return
				}
			}
		case <-deadline:
			return
		case <-r.Context().Done():
			return
		}
	}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// parseTime reads Docker's time parameters: unix seconds with optional fraction.
func parseTime(s string) time.Time {
	if s == "" {
		return time.Time{}
	}
	sec, frac, _ := strings.Cut(s, ".")
	var n, ns int64
	for _, c := range sec {
		if c < '0' || c > '9' {
			if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
				return t
			}
			return time.Time{}
		}
		n = n*10 + int64(c-'0')
	}
	for i := 0; i < 9; i++ {
		ns *= 10
		if i < len(frac) {
			ns += int64(frac[i] - '0')
		}
	}
	return time.Unix(n, ns)
}
