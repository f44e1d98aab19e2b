package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// crictlVersion is the cri-tools release the CRI tests build crictl from.
const crictlVersion = "v1.37.0"

// The CRI tests' engine uses bridges and subnets of its own (tcri*), so it never meets the
// shared engine's.
const (
	criBridge    = "tcri0"
	criCIDR      = "10.231.0.0/24"
	criPodBridge = "tcripod0"
	criPodCIDR   = "10.232.0.0/24"
)

var (
	crictlOnce sync.Once
	crictlPath string
	crictlErr  error
)

// crictl builds crictl from its Go module through the module proxy, once, into
// $HOME/.cache/berth-e2e (reruns reuse it), and returns its path; it skips the test
// when crictl cannot be built here.
func crictl(t *testing.T) string {
	t.Helper()
	crictlOnce.Do(func() {
		home, err := os.UserHomeDir()
		if err != nil {
			home = os.TempDir()
		}
		dir := filepath.Join(home, ".cache", "berth-e2e", "crictl-"+crictlVersion)
		crictlPath = filepath.Join(dir, "crictl")
		if _, err := os.Stat(crictlPath); err == nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "go", "install", "sigs.k8s.io/cri-tools/cmd/crictl@"+crictlVersion)
		cmd.Env = append(os.Environ(), "GOBIN="+dir, "GOFLAGS=-mod=mod", "CGO_ENABLED=0")
		cmd.Dir = os.TempDir() // outside this module: its go.mod plays no part
		if out, err := cmd.CombinedOutput(); err != nil {
			crictlErr = fmt.Errorf("go install sigs.k8s.io/cri-tools/cmd/crictl@%s: %v\n%s", crictlVersion, err, out)
		}
	})
	if crictlErr != nil {
		t.Skipf("crictl cannot be built here (it comes from the Go module proxy): %v", crictlErr)
	}
	return crictlPath
}

// criEngine is a berth engine with a pod network, driven with crictl.
type criEngine struct {
	*engine
	crictl string
	config string // crictl's config file: the engine's cri.sock
}

// newCRIEngine starts an engine of its own with the CRI tests' bridges and pod CIDR,
// imports bb:1.0 through docker import, and removes everything it made (pods first)
// when the test ends, whatever happened.
func newCRIEngine(t *testing.T) *criEngine {
	t.Helper()
	if skipReason != "" {
		t.Skip(skipReason)
	}
	if peerMode() {
		t.Skip("the CRI is Berth's: there is no peer to compare with")
	}
	bin := crictl(t)
	e, err := newEngine("cri")
	if err != nil {
		t.Fatal(err)
	}
	_, e.cidr, _ = net.ParseCIDR(criCIDR)
	e.bridge = criBridge
	ce := &criEngine{engine: e, crictl: bin, config: filepath.Join(e.work, "crictl.yaml")}
	sock := filepath.Join(e.runDir, "cri.sock")
	cfg := fmt.Sprintf("runtime-endpoint: unix://%s\nimage-endpoint: unix://%s\ntimeout: 30\n", sock, sock)
	if err := os.WriteFile(ce.config, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ce.cleanup)
	if err := ce.start(); err != nil {
		t.Fatal(err)
	}
	e.logOnFailure(t)
	if _, err := e.importBusybox(bbImage, nil, nil); err != nil {
		t.Fatal(err)
	}
	return ce
}

// start runs the engine with the pod network's flags and waits for both sockets.
func (ce *criEngine) start() error {
	e := ce.engine
	logf, err := os.OpenFile(e.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	fmt.Fprintf(logf, "\n==== e2e: starting engine at %s ====\n", time.Now().Format(time.RFC3339Nano))
	cmd := exec.Command(berthBin(), "engine", "--data-dir", e.dataDir, "--run-dir", e.runDir,
		"--bridge", e.bridge, "--bridge-cidr", e.cidr.String(), "--pod-bridge", criPodBridge, "--pod-cidr", criPodCIDR)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return err
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	e.mu.Lock()
	e.cmd, e.done = cmd, done
	e.mu.Unlock()
	deadline := time.Now().Add(60 * time.Second)
	for {
		if e.dockerCtx(context.Background(), 10*time.Second, nil, "version").Code == 0 &&
			ce.run(context.Background(), "version").Code == 0 {
			return nil
		}
		select {
		case <-done:
			return fmt.Errorf("the engine exited before it answered\n%s", e.logTail(30))
		case <-time.After(200 * time.Millisecond): // poll interval
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the engine did not answer docker and crictl within 60s\n%s", e.logTail(30))
		}
	}
}

// cleanup removes the pods (their infra processes, namespaces and addresses), then
// everything the engine made, then the pod bridge and its nftables table.
func (ce *criEngine) cleanup() {
	e := ce.engine
	running := e.pid() != 0
	if running {
		select {
		case <-e.done:
			running = false
		default:
		}
	}
	if !running && e.pid() != 0 {
		running = ce.start() == nil
	}
	if running {
		ce.run(context.Background(), "rmp", "-a", "-f")
	}
	// Infra processes do not name the work directory: end any the engine left, by pid.
	ents, _ := os.ReadDir(filepath.Join(e.dataDir, "sandboxes"))
	for _, ent := range ents {
		var sb struct {
			Infra struct {
				Pid   int    `json:"pid"`
				Start uint64 `json:"start"`
			} `json:"infra"`
		}
		data, err := os.ReadFile(filepath.Join(e.dataDir, "sandboxes", ent.Name(), "sandbox.json"))
		if err != nil || json.Unmarshal(data, &sb) != nil || sb.Infra.Pid <= 0 {
			continue
		}
		if st, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", sb.Infra.Pid)); err == nil && bytes.HasPrefix(st, []byte("berth-pause")) {
			_ = syscall.Kill(sb.Infra.Pid, syscall.SIGKILL)
		}
	}
	e.cleanup()
	_ = exec.Command("ip", "link", "del", criPodBridge).Run()
	deleteNftTablesNaming(criPodBridge)
}

type crictlResult struct {
	Args           []string
	Stdout, Stderr string
	Code           int
}

func (r crictlResult) String() string {
	return fmt.Sprintf("`crictl %s` exited %d\nstdout: %s\nstderr: %s", strings.Join(r.Args, " "), r.Code, clip(r.Stdout), clip(r.Stderr))
}

func (r crictlResult) Out() string { return strings.TrimSpace(r.Stdout) }

// run runs crictl against the engine (60s limit).
func (ce *criEngine) run(ctx context.Context, args ...string) crictlResult {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, ce.crictl, append([]string{"--config", ce.config}, args...)...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	cmd.WaitDelay = 5 * time.Second
	err := cmd.Run()
	r := crictlResult{Args: args, Stdout: out.String(), Stderr: errb.String()}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		r.Code = ee.ExitCode()
	default:
		r.Code = -1
		r.Stderr += "\n[e2e: " + err.Error() + "]"
	}
	return r
}

// ok runs crictl and fails the test unless it exits 0; it returns stdout trimmed.
func (ce *criEngine) ok(t *testing.T, args ...string) string {
	t.Helper()
	r := ce.run(t.Context(), args...)
	if r.Code != 0 {
		t.Fatalf("expected success: %s", r)
	}
	return r.Out()
}

// writeJSON writes v as a JSON file in the engine's work directory and returns its path.
func (ce *criEngine) writeJSON(t *testing.T, name string, v any) string {
	t.Helper()
	data, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(ce.work, name)
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// podConfig is a PodSandboxConfig as crictl reads it.
func (ce *criEngine) podConfig(t *testing.T, name string, hostPort int) string {
	t.Helper()
	cfg := map[string]any{
		"metadata":      map[string]any{"name": name, "namespace": "tcri", "uid": "uid-" + name, "attempt": 0},
		"hostname":      name,
		"log_directory": filepath.Join(ce.work, "pods", name),
		"dns_config":    map[string]any{"servers": []string{"10.43.0.10"}, "searches": []string{"tcri.svc.cluster.local"}, "options": []string{"ndots:5"}},
		"labels":        map[string]string{"app": name},
		"linux":         map[string]any{},
	}
	if hostPort > 0 {
		cfg["port_mappings"] = []map[string]any{{"protocol": 0, "container_port": 80, "host_port": hostPort}}
	}
	return ce.writeJSON(t, "pod-"+name+".json", cfg)
}

// containerConfig is a ContainerConfig running command in bb:1.0.
func (ce *criEngine) containerConfig(t *testing.T, name string, command ...string) string {
	t.Helper()
	return ce.writeJSON(t, "ctr-"+name+".json", map[string]any{
		"metadata": map[string]any{"name": name},
		"image":    map[string]any{"image": bbImage},
		"command":  command,
		"log_path": name + "/0.log",
		"labels":   map[string]string{"role": name},
		"linux":    map[string]any{},
	})
}

// runPod starts a pod with one container and returns the pod's and the container's ids.
func (ce *criEngine) runPod(t *testing.T, pod string, hostPort int, ctr string, command ...string) (string, string) {
	t.Helper()
	podCfg := ce.podConfig(t, pod, hostPort)
	podID := ce.ok(t, "runp", podCfg)
	ctrID := ce.ok(t, "create", podID, ce.containerConfig(t, ctr, command...), podCfg)
	ce.ok(t, "start", ctrID)
	return podID, ctrID
}

// podIP is the pod's address as `crictl inspectp` reports it.
func (ce *criEngine) podIP(t *testing.T, podID string) string {
	t.Helper()
	var st struct {
		Status struct {
			State   string `json:"state"`
			Network struct {
				IP string `json:"ip"`
			} `json:"network"`
		} `json:"status"`
	}
	out := ce.ok(t, "inspectp", "-o", "json", podID)
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("inspectp printed %q: %v", out, err)
	}
	return st.Status.Network.IP
}

// runIn runs crictl with stdin.
func (ce *criEngine) runIn(t *testing.T, stdin string, args ...string) crictlResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, ce.crictl, append([]string{"--config", ce.config}, args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	cmd.WaitDelay = 5 * time.Second
	err := cmd.Run()
	r := crictlResult{Args: args, Stdout: out.String(), Stderr: errb.String()}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		r.Code = ee.ExitCode()
	} else if err != nil {
		r.Code = -1
	}
	return r
}
