// Package container keeps container records: their configuration as the Docker API
// gave it, their state, and the rules that move the state (restart policy, backoff).
// It holds no processes; the engine and runtime do.
package container

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	dcontainer "github.com/moby/moby/api/types/container"

	"github.com/berth-project/berth/internal/engine/errdefs"
	"github.com/berth-project/berth/internal/program"
)

// Status values, as Docker names them.
const (
	Created    = "created"
	Running    = "running"
	Paused     = "paused"
	Restarting = "restarting"
	Removing   = "removing"
	Exited     = "exited"
	Dead       = "dead"
)

// State is a container's run state.
type State struct {
	Status     string    `json:"status"`
	Pid        int       `json:"pid"`
	ExitCode   int       `json:"exitCode"`
	Error      string    `json:"error,omitempty"`
	OOMKilled  bool      `json:"oomKilled,omitempty"`
	StartedAt  time.Time `json:"startedAt"`
	FinishedAt time.Time `json:"finishedAt"`
}

// Mount is a resolved mount of a container.
type Mount struct {
	Type        string `json:"type"` // bind, volume, tmpfs
	Name        string `json:"name,omitempty"`
	Source      string `json:"source"`
	Destination string `json:"destination"`
	RW          bool   `json:"rw"`
	Mode        string `json:"mode,omitempty"`
	Anonymous   bool   `json:"anonymous,omitempty"`
	NoCopy      bool   `json:"noCopy,omitempty"`
	Options     string `json:"options,omitempty"` // tmpfs options
}

// Port is a published port as bound: HostIP:HostPort on the host to the container's
// Port/Proto.
type Port struct {
	Proto    string `json:"proto"`
	Port     uint16 `json:"port"`
	HostIP   string `json:"hostIP"`
	HostPort uint16 `json:"hostPort"`
}

// Attachment is a network the container joined beyond its primary one (docker network
// connect); Endpoint is set while the container runs.
type Attachment struct {
	Network  string    `json:"network"`
	Aliases  []string  `json:"aliases,omitempty"`
	IP       string    `json:"wantIP,omitempty"`
	Endpoint *Endpoint `json:"endpoint,omitempty"`
}

// Endpoint is where the container sits on the network.
type Endpoint struct {
	NetNS     string `json:"netns,omitempty"`
	IP        string `json:"ip,omitempty"`
	PrefixLen int    `json:"prefixLen,omitempty"`
	Gateway   string `json:"gateway,omitempty"`
	MAC       string `json:"mac,omitempty"`
}

// Container is one container record.
type Container struct {
	ID         string                 `json:"id"`
	Name       string                 `json:"name"` // without the leading "/"
	Created    time.Time              `json:"created"`
	Image      string                 `json:"image"` // image id (sha256:...)
	Path       string                 `json:"path"`
	Args       []string               `json:"args"`
	Config     *dcontainer.Config     `json:"config"`
	HostConfig *dcontainer.HostConfig `json:"hostConfig"`
	State      State                  `json:"state"`
	Mounts     []Mount                `json:"mounts"`
	Endpoint   *Endpoint              `json:"endpoint,omitempty"`
	Ports      []Port                 `json:"ports,omitempty"` // published, while running
	// Aliases are extra DNS names on a user network (--network-alias); IP is the
	// address asked for with --ip.
	Aliases  []string      `json:"aliases,omitempty"`
	IP       string        `json:"wantIP,omitempty"`
	Extra    []*Attachment `json:"extraNetworks,omitempty"`
	Restarts int           `json:"restartCount"`
	// ManuallyStopped is set by stop/kill from the user: always and unless-stopped do
	// not bring such a container back, and unless-stopped stays down across restarts.
	ManuallyStopped bool `json:"manuallyStopped"`
	// Pod is set for a container of a pod sandbox (made through the CRI).
	Pod *Pod `json:"pod,omitempty"`

	dir string
}

// Pod is what a container of a pod sandbox keeps beyond Docker's view of it.
type Pod struct {
	Sandbox     string            `json:"sandbox"`
	Name        string            `json:"name"` // the container's name in the pod
	Attempt     uint32            `json:"attempt"`
	Labels      map[string]string `json:"labels,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
	// LogPath is the CRI log the kubelet reads ("" for none).
	LogPath string `json:"logPath,omitempty"`
	// Image is the image as the kubelet named it.
	Image string `json:"image"`
	// PID is the container's PID namespace: "pod" (the sandbox's), "container" (its
	// own), "node" or "target" (TargetPID's).
	PID       string `json:"pid"`
	TargetPID string `json:"targetPid,omitempty"`
}

// Dir is the container's directory in the data dir (config, log, hosts files).
func (c *Container) Dir() string { return c.dir }

// LogPath is the json-file log.
func (c *Container) LogPath() string { return filepath.Join(c.dir, c.ID+"-json.log") }

// CRILogPath is the CRI log of a pod's container, "" for other containers.
func (c *Container) CRILogPath() string {
	if c.Pod == nil {
		return ""
	}
	return c.Pod.LogPath
}

// Running reports whether the container's process is alive (running or paused).
func (c *Container) Running() bool {
	return c.State.Status == Running || c.State.Status == Paused
}

// Store keeps container records in memory and under root/ID/config.v2.json.
type Store struct {
	root string
	mu   sync.RWMutex
	byID map[string]*Container
	bg   sync.WaitGroup // directories being deleted in the background
}

// Open loads every record under root.
func Open(root string) (*Store, error) {
	if err := os.MkdirAll(root, 0o700); err != nil {
		return nil, err
	}
	s := &Store{root: root, byID: map[string]*Container{}}
	ents, err := os.ReadDir(root)
	if err != nil {
		return nil, err
	}
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), removedPrefix) { // a removal the last engine did not finish
			os.RemoveAll(filepath.Join(root, e.Name()))
			continue
		}
		data, err := os.ReadFile(filepath.Join(root, e.Name(), "config.v2.json"))
		if err != nil {
			continue
		}
		c := &Container{}
		if json.Unmarshal(data, c) != nil || c.ID != e.Name() {
			continue
		}
		c.dir = filepath.Join(root, c.ID)
		s.byID[c.ID] = c
	}
	return s, nil
}

// NewID returns a random 64-hex container id.
func NewID() string {
	b := make([]byte, 32)
	rand.Read(b)
	return hex.EncodeToString(b)
}

var validName = regexp.MustCompile(`^/?[a-zA-Z0-9][a-zA-Z0-9_.-]+$`)

// ValidateName checks a user-given container name.
func ValidateName(name string) error {
	if !validName.MatchString(name) {
		return errdefs.Invalid(fmt.Sprintf("Invalid container name (%s), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed", name))
	}
	return nil
}

// Add records a new container, claiming its name.
func (s *Store) Add(c *Container) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, o := range s.byID {
		if o.Name == c.Name {
			return errdefs.Conflict(fmt.Sprintf("Conflict. The container name \"/%s\" is already in use by container \"%s\". You have to remove (or rename) that container to be able to reuse that name.", c.Name, o.ID))
		}
	}
	c.dir = filepath.Join(s.root, c.ID)
	if err := os.MkdirAll(c.dir, 0o700); err != nil {
		return err
	}
	s.byID[c.ID] = c
	return s.saveLocked(c)
}

// Rename gives a container a new, unused name.
func (s *Store) Rename(c *Container, name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, o := range s.byID {
		if o.Name == name && o.ID != c.ID {
			return errdefs.Conflict(fmt.Sprintf("Conflict. The container name \"/%s\" is already in use by container \"%s\". You have to remove (or rename) that container to be able to reuse that name.", name, o.ID))
		}
	}
	c.Name = name
	return s.saveLocked(c)
}

// Save persists a record. Callers serialize changes to one container.
func (s *Store) Save(c *Container) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.saveLocked(c)
}

func (s *Store) saveLocked(c *Container) error {
	data, err := json.Marshal(c)
	if err != nil {
		return err
	}
	p := filepath.Join(c.dir, "config.v2.json")
	if err := os.WriteFile(p+".tmp", data, 0o600); err != nil {
		return err
	}
	return os.Rename(p+".tmp", p)
}

// Delete forgets a container and removes its directory: renamed aside at once (a
// name no container has), deleted in the background (docker run --rm waits for the
// removal, not for the unlinking of its log).
func (s *Store) Delete(c *Container) error {
	aside := filepath.Join(s.root, removedPrefix+c.ID)
	if err := os.Rename(c.dir, aside); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	s.mu.Lock()
	delete(s.byID, c.ID)
	s.mu.Unlock()
	s.bg.Add(1)
	program.Background(func() {
		defer s.bg.Done()
		os.RemoveAll(aside)
	})
	return nil
}

// removedPrefix starts the name of a removed container's directory until it is gone.
const removedPrefix = ".removed-"

// Wait returns once the deletions running in the background are done.
func (s *Store) Wait() { s.bg.Wait() }

// Get finds a container by full id, name (with or without "/"), or unique id prefix.
func (s *Store) Get(ref string) (*Container, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if ref == "" {
		return nil, errdefs.NotFound("No such container: " + ref)
	}
	if c, ok := s.byID[ref]; ok {
		return c, nil
	}
	name := strings.TrimPrefix(ref, "/")
	for _, c := range s.byID {
		if c.Name == name {
			return c, nil
		}
	}
	var found *Container
	for id, c := range s.byID {
		if strings.HasPrefix(id, ref) {
			if found != nil {
				return nil, errdefs.Invalid(fmt.Sprintf("Multiple IDs found with provided prefix: %s", ref))
			}
			found = c
		}
	}
	if found == nil {
		return nil, errdefs.NotFound("No such container: " + ref)
	}
	return found, nil
}

// List returns all containers, newest first.
func (s *Store) List() []*Container {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]*Container, 0, len(s.byID))
	for _, c := range s.byID {
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Created.After(out[j].Created) })
	return out
}
