package runtime

import (
	"encoding/binary"
	"fmt"
	"io"
	"time"
)

// The engine and a shim talk over the shim's unix socket. Each connection starts with
// one JSON Request line; what follows depends on the op. Output travels in Docker's
// stdcopy framing (8-byte header: stream, 0, 0, 0, big-endian length), so the engine
// can pass frames to a non-TTY client untouched. Stream FrameExit carries the exit
// status as JSON and ends the stream.
const (
	FrameStdout = 1
	FrameStderr = 2
	FrameExit   = 4
	// FrameAttached acknowledges an attach: the client is subscribed from then on, so a
	// start that follows cannot outrun it.
	FrameAttached = 5
)

// Request is the first line of every connection to a shim.
type Request struct {
	Op string `json:"op"` // start, abandon, attach, wait, resize, exec, kill, pause, resume, stats, ps, reopen-log, update

	// attach
	Stdin  bool `json:"stdin,omitempty"`
	Stdout bool `json:"stdout,omitempty"`
	Stderr bool `json:"stderr,omitempty"`
	Start  bool `json:"start,omitempty"` // and start, once subscribed: as a start request

	// resize (Exec names the exec session; empty for the container's own tty)
	Width  uint16 `json:"w,omitempty"`
	Height uint16 `json:"h,omitempty"`

	// exec
	Exec *ExecSpec `json:"exec,omitempty"`
	// resize of an exec session
	ExecID string `json:"execId,omitempty"`

	// kill
	Signal int  `json:"signal,omitempty"`
	All    bool `json:"all,omitempty"`

	// update: the cgroup limits to set (zero fields are left as they are)
	Resources *Resources `json:"resources,omitempty"`

	// Preface is input that arrived with the request line, when the shim hands a
	// connection to berth-runtime.
	Preface []byte `json:"preface,omitempty"`
}

// ExecSpec is a process to run inside a running container.
type ExecSpec struct {
	ID     string   `json:"id"`
	Args   []string `json:"args"`
	Env    []string `json:"env"`
	Cwd    string   `json:"cwd"`
	UID    int      `json:"uid"`
	GID    int      `json:"gid"`
	Groups []int    `json:"groups,omitempty"`
	Tty    bool     `json:"tty"`
	Stdin  bool     `json:"stdin"`
	Width  uint16   `json:"w,omitempty"`
	Height uint16   `json:"h,omitempty"`
	// KillOnHangup kills the process when the engine hangs up before it has exited
	// (a CRI ExecSync past its timeout); only without stdin.
	KillOnHangup bool `json:"killOnHangup,omitempty"`
}

// Resources are the cgroup limits of a running container that can change; a zero
// field keeps the current value.
type Resources struct {
	CPUShares  uint64 `json:"cpuShares,omitempty"`
	CPUQuota   int64  `json:"cpuQuota,omitempty"` // -1: unlimited
	CPUPeriod  uint64 `json:"cpuPeriod,omitempty"`
	Memory     int64  `json:"memory,omitempty"` // bytes; -1: unlimited
	CpusetCpus string `json:"cpusetCpus,omitempty"`
	CpusetMems string `json:"cpusetMems,omitempty"`
	PidsLimit  int64  `json:"pidsLimit,omitempty"`
}

// Reply answers simple ops.
type Reply struct {
	Error string `json:"error,omitempty"`
	Pid   int    `json:"pid,omitempty"`
	Pids  []int  `json:"pids,omitempty"`
	Stats *Stats `json:"stats,omitempty"`
}

// Exit is how a process ended. The shim writes the container's Exit to exit.json.
type Exit struct {
	Code       int       `json:"code"`
	Signal     int       `json:"signal,omitempty"`
	OOMKilled  bool      `json:"oomKilled,omitempty"`
	FinishedAt time.Time `json:"finishedAt"`
	Error      string    `json:"error,omitempty"`
}

// Stats is a snapshot of a container's cgroup counters.
type Stats struct {
	CPUTotal    uint64 `json:"cpuTotal"` // ns
	CPUSystem   uint64 `json:"cpuSystem"`
	CPUUser     uint64 `json:"cpuUser"`
	MemoryUsage uint64 `json:"memUsage"`
	MemoryLimit uint64 `json:"memLimit"`
	MemoryCache uint64 `json:"memCache"`
	// MemoryInactiveFile is page cache the kernel may reclaim first: usage minus it is
	// the working set the kubelet evicts by.
	MemoryInactiveFile uint64 `json:"memInactiveFile,omitempty"`
	Pids               uint64 `json:"pids"`
	PidsLimit          uint64 `json:"pidsLimit"`
	NetRx              uint64 `json:"netRx"`
	NetTx              uint64 `json:"netTx"`
	BlkRead            uint64 `json:"blkRead"`
	BlkWrite           uint64 `json:"blkWrite"`
}

// WriteFrame writes one stdcopy frame.
func WriteFrame(w io.Writer, stream byte, p []byte) error {
	var h [8]byte
	h[0] = stream
	binary.BigEndian.PutUint32(h[4:], uint32(len(p)))
	if _, err := w.Write(append(h[:], p...)); err != nil {
		return err
	}
	return nil
}

// ReadFrame reads one stdcopy frame into buf (grown as needed).
func ReadFrame(r io.Reader, buf []byte) (byte, []byte, error) {
	var h [8]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return 0, nil, err
	}
	n := binary.BigEndian.Uint32(h[4:])
	if n > 16<<20 {
		return 0, nil, fmt.Errorf("frame of %d bytes is too large", n)
	}
	if cap(buf) < int(n) {
		buf = make([]byte, n)
	}
	buf = buf[:n]
	if _, err := io.ReadFull(r, buf); err != nil {
		return 0, nil, err
	}
	return h[0], buf, nil
}

// Handover is what berth-runtime sends the shim that started it (see the standby in
// standby.go) once it has made the container, or failed to: one message on a
// SOCK_SEQPACKET socket, with the shim's descriptors (Files names them, in order)
// attached as SCM_RIGHTS. Then berth-runtime exits, and the container's init, already
// running, passes to the shim, its nearest subreaper.
type Handover struct {
	Error string `json:"error,omitempty"`

	ID        string   `json:"id,omitempty"`
	Bundle    string   `json:"bundle,omitempty"`
	Root      string   `json:"root,omitempty"`
	Log       string   `json:"log,omitempty"`    // the container's json-file log
	CRILog    string   `json:"criLog,omitempty"` // a pod container's CRI log
	ShimLog   string   `json:"shimLog,omitempty"`
	StdinOnce bool     `json:"stdinOnce,omitempty"`
	Held      bool     `json:"held,omitempty"` // the process waits for the shim's release (StartOptions.Hold)
	Pid       int      `json:"pid,omitempty"`
	Files     []string `json:"files,omitempty"` // listen, stdout, stderr, stdin, console

	// CgroupPaths are the container's cgroups (one per v1 hierarchy, or the v2 one
	// under ""), for the shim's clean-up after the exit.
	CgroupPaths map[string]string `json:"cgroupPaths,omitempty"`
}
