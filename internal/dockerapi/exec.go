package dockerapi

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"os"
	goruntime "runtime"
	"strconv"
	"strings"
	"time"

	dcontainer "github.com/moby/moby/api/types/container"
	"golang.org/x/sys/unix"

	"github.com/berth-project/berth/internal/engine"
)

func (s *Server) execRoutes() {
	s.mux.HandleFunc("POST /containers/{id}/exec", s.execCreate)
	s.mux.HandleFunc("POST /exec/{id}/start", s.execStart)
	s.mux.HandleFunc("POST /exec/{id}/resize", s.execResize)
	s.mux.HandleFunc("GET /exec/{id}/json", s.execInspect)
}

func (s *Server) execCreate(w http.ResponseWriter, r *http.Request) {
	var req dcontainer.ExecCreateRequest
	if err := decodeBody(r, &req); err != nil {
		writeError(w, err)
		return
	}
	id, err := s.e.ExecCreate(r.Context(), r.PathValue("id"), engine.ExecOptions{
		Cmd: req.Cmd, Env: req.Env, User: req.User, WorkingDir: req.WorkingDir, Tty: req.Tty,
		AttachStdin: req.AttachStdin, Privileged: req.Privileged,
	})
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, map[string]string{"Id": id})
}

func (s *Server) execStart(w http.ResponseWriter, r *http.Request) {
	var req dcontainer.ExecStartRequest
	if err := decodeBody(r, &req); err != nil {
		writeError(w, err)
		return
	}
	x, err := s.e.GetExec(r.PathValue("id"))
	if err != nil {
		writeError(w, err)
		return
	}
	var cw, ch uint16
	if req.ConsoleSize != nil {
		ch, cw = uint16(req.ConsoleSize[0]), uint16(req.ConsoleSize[1])
	}
	if req.Detach {
		go s.e.ExecStart(context.Background(), x.ID, engine.Streams{Out: discard{}}, cw, ch)
		w.WriteHeader(http.StatusOK)
		return
	}
	ct := "application/vnd.docker.multiplexed-stream"
	if x.Spec.Tty {
		ct = "application/vnd.docker.raw-stream"
	}
	conn, rw, err := hijack(w, r, ct)
	if err != nil {
		return
	}
	defer conn.Close()
	st := engine.Streams{Out: conn, Framed: !x.Spec.Tty, Stdout: true, Stderr: true}
	if x.AttachStdin {
		st.Stdin = bufio.NewReader(rw.Reader)
	}
	s.e.ExecStart(context.Background(), x.ID, st, cw, ch)
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

func (s *Server) execResize(w http.ResponseWriter, r *http.Request) {
	h, _ := intValue(r, "h", 0)
	wd, _ := intValue(r, "w", 0)
	if err := s.e.ExecResize(r.Context(), r.PathValue("id"), uint16(wd), uint16(h)); err != nil {
		writeError(w, err)
		return
	}
	w.WriteHeader(http.StatusOK)
}

func (s *Server) execInspect(w http.ResponseWriter, r *http.Request) {
	x, err := s.e.GetExec(r.PathValue("id"))
	if err != nil {
		writeError(w, err)
		return
	}
	running, code, pid := x.State()
	writeJSON(w, http.StatusOK, dcontainer.ExecInspectResponse{
		ID: x.ID, Running: running, ExitCode: code, ContainerID: x.ContainerID, Pid: pid,
		OpenStdin: x.AttachStdin, OpenStdout: true, OpenStderr: true,
		ProcessConfig: &dcontainer.ExecProcessConfig{Tty: x.Spec.Tty, Entrypoint: x.Spec.Args[0], Arguments: x.Spec.Args[1:], User: x.User, Privileged: &x.Privileged},
	})
}

func (s *Server) statsContainer(w http.ResponseWriter, r *http.Request) {
	stream := r.URL.Query().Get("stream") == "" || boolValue(r, "stream")
	if boolValue(r, "one-shot") {
		stream = false
	}
	if _, err := s.e.Get(r.PathValue("id")); err != nil {
		writeError(w, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	fw := newFlushWriter(w)
	enc := json.NewEncoder(fw)
	var prev *dcontainer.StatsResponse
	sample := func() *dcontainer.StatsResponse {
		c, st, _ := s.e.Stats(r.Context(), r.PathValue("id"))
		resp := &dcontainer.StatsResponse{
			ID: c.ID, Name: "/" + c.Name, OSType: "linux", Read: time.Now(),
			CPUStats: dcontainer.CPUStats{
				CPUUsage:    dcontainer.CPUUsage{TotalUsage: st.CPUTotal, UsageInKernelmode: st.CPUSystem, UsageInUsermode: st.CPUUser},
				SystemUsage: systemCPU(), OnlineCPUs: uint32(goruntime.NumCPU()),
			},
			MemoryStats: dcontainer.MemoryStats{Usage: st.MemoryUsage, Limit: st.MemoryLimit, Stats: map[string]uint64{"cache": st.MemoryCache, "total_inactive_file": 0}},
			PidsStats:   dcontainer.PidsStats{Current: st.Pids, Limit: st.PidsLimit},
			Networks:    map[string]dcontainer.NetworkStats{"eth0": {RxBytes: st.NetRx, TxBytes: st.NetTx}},
		}
		if resp.MemoryStats.Limit == 0 || resp.MemoryStats.Limit > 1<<62 {
			var si unix.Sysinfo_t
			unix.Sysinfo(&si)
			resp.MemoryStats.Limit = uint64(si.Totalram) * uint64(si.Unit)
		}
		if prev != nil {
			resp.PreCPUStats = prev.CPUStats
			resp.PreRead = prev.Read
		}
		return resp
	}
	if !stream {
		// One sample with a "previous" one a moment before, so the CLI can show CPU %.
		prev = sample()
		time.Sleep(100 * time.Millisecond)
		enc.Encode(sample())
		return
	}
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		cur := sample()
		if enc.Encode(cur) != nil {
			return
		}
		prev = cur
		select {
		case <-r.Context().Done():
			return
		case <-tick.C:
		}
	}
}

// systemCPU is the host's total CPU time in nanoseconds, from /proc/stat.
func systemCPU() uint64 {
	var total uint64
	data, err := readFile("/proc/stat")
	if err != nil {
		return 0
	}
	var fields [10]uint64
	n, _ := sscanCPU(data, &fields)
	for i := 0; i < n; i++ {
		total += fields[i]
	}
	return total * 1e9 / 100 // USER_HZ
}

func readFile(p string) (string, error) {
	b, err := os.ReadFile(p)
	return string(b), err
}

// sscanCPU reads the aggregate "cpu" line of /proc/stat.
func sscanCPU(data string, out *[10]uint64) (int, error) {
	line, _, _ := strings.Cut(data, "\n")
	f := strings.Fields(line)
	n := 0
	for i := 1; i < len(f) && n < len(out); i++ {
		v, err := strconv.ParseUint(f[i], 10, 64)
		if err != nil {
			return n, err
		}
		out[n] = v
		n++
	}
	return n, nil
}
