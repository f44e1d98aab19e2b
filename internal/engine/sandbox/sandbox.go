// Package sandbox keeps pod sandbox records: what a pod asked for (the CRI's
// PodSandboxConfig, in the engine's terms) and where its namespaces are. It holds no
// processes and no network; the engine does.
package sandbox

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/berth-project/berth/internal/engine/errdefs"
	"github.com/berth-project/berth/internal/engine/runtime"
)

// States of a sandbox, as the CRI names them.
const (
	Ready    = "ready"
	NotReady = "notready"
)

// Namespace modes, as the CRI's NamespaceOption gives them.
const (
	ModePod       = "pod"       // shared by the pod's containers (the infra's)
	ModeContainer = "container" // each container its own
	ModeNode      = "node"      // the host's
	ModeTarget    = "target"    // another container's (ephemeral containers)
)

// Metadata names a pod sandbox, as the kubelet does.
type Metadata struct {
	Name      string `json:"name"`
	Namespace string `json:"namespace"`
	UID       string `json:"uid"`
	Attempt   uint32 `json:"attempt"`
}

// Key is unique per sandbox among the engine's sandboxes.
func (m Metadata) Key() string {
	return fmt.Sprintf("%s_%s_%s_%d", m.Name, m.Namespace, m.UID, m.Attempt)
}

// DNS is the resolver configuration of the pod.
type DNS struct {
	Servers  []string `json:"servers,omitempty"`
	Searches []string `json:"searches,omitempty"`
	Options  []string `json:"options,omitempty"`
}

// Port is a hostPort published to the pod.
type Port struct {
	Proto    string `json:"proto"` // tcp, udp
	Port     uint16 `json:"port"`  // in the pod
	HostIP   string `json:"hostIP,omitempty"`
	HostPort uint16 `json:"hostPort"`
}

// Sandbox is one pod sandbox record.
type Sandbox struct {
	ID           string            `json:"id"`
	Metadata     Metadata          `json:"metadata"`
	Hostname     string            `json:"hostname,omitempty"`
	LogDirectory string            `json:"logDirectory,omitempty"`
	Labels       map[string]string `json:"labels,omitempty"`
	Annotations  map[string]string `json:"annotations,omitempty"`
	Created      time.Time         `json:"created"`
	State        string            `json:"state"`
	Stopped      time.Time         `json:"stopped"` // when it last became not ready
	RuntimeClass string            `json:"runtimeHandler,omitempty"`

	// Network, PID and IPC are namespace modes (ModePod, ModeNode, ...).
	Network      string            `json:"network"`
	PID          string            `json:"pid"`
	IPC          string            `json:"ipc"`
	DNS          DNS               `json:"dns"`
	Ports        []Port            `json:"ports,omitempty"`
	CgroupParent string            `json:"cgroupParent,omitempty"`
	Sysctls      map[string]string `json:"sysctls,omitempty"`

	// Where the sandbox is while it is ready: its pinned network namespace and
	// address on the pod network (none on the host's network), and its infra process.
	NetNS     string        `json:"netns,omitempty"`
	IP        string        `json:"ip,omitempty"`
	PrefixLen int           `json:"prefixLen,omitempty"`
	Gateway   string        `json:"gateway,omitempty"`
	Infra     runtime.Infra `json:"infra"`

	dir string
}

// Dir holds the sandbox's record and the files its containers share (resolv.conf, hosts).
func (s *Sandbox) Dir() string { return s.dir }

// HostNetwork reports whether the pod uses the host's network.
func (s *Sandbox) HostNetwork() bool { return s.Network == ModeNode }

// Store keeps sandbox records in memory and under root/ID/sandbox.json. It hands out
// copies: a change is made to a copy and saved, so readers never see one half done.
type Store struct {
	root string
	mu   sync.RWMutex
	byID map[string]*Sandbox
}

// Open loads every record under root.
func Open(root string) (*Store, error) {
	if err := os.MkdirAll(root, 0o700); err != nil {
		return nil, err
	}
	st := &Store{root: root, byID: map[string]*Sandbox{}}
	ents, err := os.ReadDir(root)
	if err != nil {
		return nil, err
	}
	for _, e := range ents {
		data, err := os.ReadFile(filepath.Join(root, e.Name(), "sandbox.json"))
		if err != nil {
			continue
		}
		s := &Sandbox{}
		if json.Unmarshal(data, s) != nil || s.ID != e.Name() {
			continue
		}
		s.dir = filepath.Join(root, s.ID)
		st.byID[s.ID] = s
	}
	return st, nil
}

// Add records a new sandbox (setting its directory); its metadata must be unused.
func (st *Store) Add(s *Sandbox) error {
	st.mu.Lock()
	defer st.mu.Unlock()
	key := s.Metadata.Key()
	for _, o := range st.byID {
		if o.Metadata.Key() == key {
			return errdefs.Conflict(fmt.Sprintf("pod sandbox name %q is reserved for %s", key, o.ID))
		}
	}
	s.dir = filepath.Join(st.root, s.ID)
	if err := os.MkdirAll(s.dir, 0o711); err != nil {
		return err
	}
	if err := st.saveLocked(s); err != nil {
		os.RemoveAll(s.dir)
		return err
	}
	c := *s
	st.byID[s.ID] = &c
	return nil
}

// Save persists a changed copy of a record. Callers serialise changes to one sandbox.
func (st *Store) Save(s Sandbox) error {
	st.mu.Lock()
	defer st.mu.Unlock()
	if _, ok := st.byID[s.ID]; !ok {
		return errdefs.NotFound(fmt.Sprintf("pod sandbox %q not found", s.ID))
	}
	if err := st.saveLocked(&s); err != nil {
		return err
	}
	st.byID[s.ID] = &s
	return nil
}

func (st *Store) saveLocked(s *Sandbox) error {
	data, err := json.Marshal(s)
	if err != nil {
		return err
	}
	p := filepath.Join(s.dir, "sandbox.json")
	if err := os.WriteFile(p+".tmp", data, 0o600); err != nil {
		return err
	}
	return os.Rename(p+".tmp", p)
}

// Delete forgets a sandbox and removes its directory.
func (st *Store) Delete(id string) error {
	st.mu.Lock()
	s, ok := st.byID[id]
	delete(st.byID, id)
	st.mu.Unlock()
	if !ok {
		return nil
	}
	return os.RemoveAll(s.dir)
}

// Get finds a sandbox by full id or unique id prefix.
func (st *Store) Get(ref string) (Sandbox, error) {
	st.mu.RLock()
	defer st.mu.RUnlock()
	if s, ok := st.byID[ref]; ok {
		return *s, nil
	}
	var found *Sandbox
	if ref != "" {
		for id, s := range st.byID {
			if strings.HasPrefix(id, ref) {
				if found != nil {
					return Sandbox{}, errdefs.Invalid(fmt.Sprintf("pod sandbox id prefix %q is ambiguous", ref))
				}
				found = s
			}
		}
	}
	if found == nil {
		return Sandbox{}, errdefs.NotFound(fmt.Sprintf("pod sandbox %q not found", ref))
	}
	return *found, nil
}

// List returns all sandboxes, newest first.
func (st *Store) List() []Sandbox {
	st.mu.RLock()
	defer st.mu.RUnlock()
	out := make([]Sandbox, 0, len(st.byID))
	for _, s := range st.byID {
		out = append(out, *s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Created.After(out[j].Created) })
	return out
}
