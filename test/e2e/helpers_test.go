// Package e2e drives a real `berth engine` with the real docker CLI (and docker-py) and
// asserts what a user observes. Run it from the repository root after `make build`:
//
//	go test ./test/e2e/ -v -count=1
//
// It needs root, the docker CLI and a static /bin/busybox; it skips (saying why) without them.
//
// Environment:
//
//	BERTH_BIN            the berth binary (default: <repo>/bin/berth)
//	DOCKER               the docker CLI (default: docker on PATH)
//	BERTH_E2E_KEEP=1     keep the work directories (engine logs) for a post-mortem
//	BERTH_E2E_PEER=docker  run the suite against Debian's dockerd instead of berth, to check
//	                     what Docker itself does (needs the docker.io package). Where Berth is
//	                     asked to go beyond Docker (a 400 for a malformed create body, an error
//	                     for ../ entries on import), Docker fails those tests.
package e2e

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"debug/elf"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// bbImage is the busybox image every test may run; TestMain imports it into the shared engine.
const bbImage = "bb:1.0"

// busyboxPath is Debian's busybox-static (the Makefile installs it).
const busyboxPath = "/bin/busybox"

var (
	shared     *engine // the engine most tests use, started once in TestMain
	skipReason string  // set when the environment cannot run the suite at all
	setupErr   string  // set when the shared engine could not be started: every test fails with it
	dockerBin  string

	hexID64 = regexp.MustCompile(`^[0-9a-f]{64}$`)
	hexID12 = regexp.MustCompile(`^[0-9a-f]{12}$`)
)

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	skipReason = prerequisites()
	if skipReason == "" && setupErr == "" {
		e, err := newEngine("s")
		if err == nil {
			// Tear the engine down on Ctrl-C too: it would otherwise leave a bridge and mounts behind.
			sig := make(chan os.Signal, 1)
			signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
			go func() {
				<-sig
				e.cleanup()
				os.Exit(2)
			}()
			defer e.cleanup()
			err = e.start()
			if err == nil {
				_, err = e.importBusybox(bbImage, nil, nil)
			}
		}
		if err != nil {
			setupErr = err.Error()
			fmt.Fprintln(os.Stderr, "e2e: the shared engine is not usable:", setupErr)
		} else {
			shared = e
		}
	} else if skipReason != "" {
		fmt.Fprintln(os.Stderr, "e2e: skipping:", skipReason)
	}
	return m.Run()
}

// prerequisites returns why the suite cannot run here, or "".
func prerequisites() string {
	if os.Geteuid() != 0 {
		return "the e2e tests need root (namespaces, mounts, a bridge): run them as root"
	}
	dockerBin = os.Getenv("DOCKER")
	if dockerBin == "" {
		p, err := exec.LookPath("docker")
		if err != nil {
			return "the docker CLI is not installed (wanted /usr/local/bin/docker)"
		}
		dockerBin = p
	}
	if peerMode() {
		if _, err := exec.LookPath("dockerd"); err != nil {
			return "BERTH_E2E_PEER=docker needs dockerd (apt-get install docker.io)"
		}
	} else if _, err := os.Stat(berthBin()); err != nil {
		msg := fmt.Sprintf("%s not found: run `make build` first (or set BERTH_BIN)", berthBin())
		if os.Getenv("CI") != "" {
			// In CI a missing binary is a broken pipeline, not an environment to skip.
			setupErr = msg
			return ""
		}
		return msg
	}
	if err := checkStaticBusybox(); err != nil {
		return err.Error()
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return "the ip command (iproute2) is missing"
	}
	return ""
}

func checkStaticBusybox() error {
	f, err := elf.Open(busyboxPath)
	if err != nil {
		return fmt.Errorf("%s is missing or not an ELF binary (%v): install busybox-static", busyboxPath, err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return fmt.Errorf("%s is dynamically linked; the test image needs a static one: apt-get install busybox-static", busyboxPath)
		}
	}
	return nil
}

func peerMode() bool { return os.Getenv("BERTH_E2E_PEER") == "docker" }

// repoRoot is the repository root: tests run in test/e2e.
func repoRoot() string {
	wd, err := os.Getwd()
	if err != nil {
		return "../.."
	}
	return filepath.Clean(filepath.Join(wd, "..", ".."))
}

func berthBin() string {
	if b := os.Getenv("BERTH_BIN"); b != "" {
		return b
	}
	return filepath.Join(repoRoot(), "bin", "berth")
}

// needEngine returns the shared engine, or skips/fails the test when there is none. On failure
// the tail of the engine's log is attached to the test output.
func needEngine(t *testing.T) *engine {
	t.Helper()
	if skipReason != "" {
		t.Skip(skipReason)
	}
	if setupErr != "" {
		t.Fatalf("the shared engine is not usable: %s", setupErr)
	}
	shared.logOnFailure(t)
	return shared
}

// privateEngine starts an engine of the test's own, for a test that stops, crashes or
// breaks it; it goes with the test. It has no images.
func privateEngine(t *testing.T, name string) *engine {
	t.Helper()
	if skipReason != "" {
		t.Skip(skipReason)
	}
	if setupErr != "" {
		t.Fatalf("cannot run: %s", setupErr)
	}
	e, err := newEngine(name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.cleanup)
	e.logOnFailure(t)
	if err := e.start(); err != nil {
		t.Fatal(err)
	}
	return e
}

// ---------------------------------------------------------------------------------------------
// The engine under test.

type engine struct {
	name    string // short tag used in logs
	work    string // everything the engine owns lives under here
	dataDir string
	runDir  string
	sock    string
	host    string // DOCKER_HOST
	bridge  string
	cidr    *net.IPNet
	logPath string
	cfgDir  string // an empty DOCKER_CONFIG, so the user's CLI config plays no part

	mu      sync.Mutex
	cmd     *exec.Cmd
	done    chan struct{} // closed when cmd has exited
	cleaned bool
}

func newEngine(name string) (*engine, error) {
	work, err := os.MkdirTemp("/tmp", "be2e")
	if err != nil {
		return nil, err
	}
	e := &engine{
		name:    name,
		work:    work,
		dataDir: filepath.Join(work, "data"),
		runDir:  filepath.Join(work, "run"),
		logPath: filepath.Join(work, "engine.log"),
		cfgDir:  filepath.Join(work, "cfg"),
		bridge:  "be2e" + randHex(5),
		cidr:    pickCIDR(),
	}
	e.sock = filepath.Join(e.runDir, "docker.sock")
	e.host = "unix://" + e.sock
	for _, d := range []string{e.dataDir, e.runDir, e.cfgDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
	}
	if len(e.sock) >= 100 {
		return nil, fmt.Errorf("socket path %q is too long for a unix socket", e.sock)
	}
	return e, nil
}

// pickCIDR picks a random 10.2xx.N.0/24 that no route on the host already covers.
func pickCIDR() *net.IPNet {
	var used []*net.IPNet
	if out, err := exec.Command("ip", "-4", "route", "show", "table", "all").Output(); err == nil {
		for _, f := range strings.Fields(string(out)) {
			if _, n, err := net.ParseCIDR(f); err == nil {
				used = append(used, n)
			}
		}
	}
	for i := 0; ; i++ {
		ip := net.IPv4(10, byte(200+randInt(56)), byte(randInt(256)), 0).To4()
		clash := false
		for _, n := range used {
			if n.Contains(ip) {
				clash = true
			}
		}
		if !clash || i > 50 {
			return &net.IPNet{IP: ip, Mask: net.CIDRMask(24, 32)}
		}
	}
}

func (e *engine) gateway() net.IP {
	ip := make(net.IP, 4)
	copy(ip, e.cidr.IP.To4())
	ip[3] = 1
	return ip
}

// start launches the engine (again, on the same directories, when it was stopped) and waits
// until `docker version` answers.
func (e *engine) start() error {
	logf, err := os.OpenFile(e.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	fmt.Fprintf(logf, "\n==== e2e: starting engine at %s ====\n", time.Now().Format(time.RFC3339Nano))
	var cmd *exec.Cmd
	if peerMode() {
		if err := e.peerBridge(); err != nil {
			return err
		}
		cmd = exec.Command("dockerd", "--data-root", e.dataDir, "--exec-root", filepath.Join(e.runDir, "x"),
			"--pidfile", filepath.Join(e.runDir, "dockerd.pid"), "-H", e.host, "--bridge", e.bridge,
			"--iptables=false", "--ip-masq=false", "--live-restore")
	} else {
		cmd = exec.Command(berthBin(), "engine", "--data-dir", e.dataDir, "--run-dir", e.runDir,
			"--bridge", e.bridge, "--bridge-cidr", e.cidr.String())
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", cmd.Path, err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	e.mu.Lock()
	e.cmd, e.done = cmd, done
	e.mu.Unlock()

	deadline := time.Now().Add(60 * time.Second)
	for {
		r := e.dockerCtx(context.Background(), 10*time.Second, nil, "version")
		if r.Code == 0 {
			return nil
		}
		select {
		case <-done:
			return fmt.Errorf("the engine exited before it answered (%s)\n%s", cmd.ProcessState, e.logTail(30))
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the engine did not answer `docker version` within 60s: %s\n%s", r, e.logTail(30))
		}
		<-time.After(200 * time.Millisecond) // poll interval
	}
}

// peerBridge makes the bridge dockerd is told to use (berth makes its own).
func (e *engine) peerBridge() error {
	if exec.Command("ip", "link", "show", e.bridge).Run() == nil {
		return nil
	}
	for _, args := range [][]string{
		{"link", "add", e.bridge, "type", "bridge"},
		{"addr", "add", e.gateway().String() + "/24", "dev", e.bridge},
		{"link", "set", e.bridge, "up"},
	} {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	return nil
}

func (e *engine) pid() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.cmd == nil || e.cmd.Process == nil {
		return 0
	}
	return e.cmd.Process.Pid
}

// stop sends SIGTERM and waits for the engine to exit (SIGKILL after 30s).
func (e *engine) stop() error {
	return e.signalAndWait(syscall.SIGTERM, 30*time.Second)
}

// crash kills the engine with SIGKILL, as a crash would.
func (e *engine) crash() error {
	err := e.signalAndWait(syscall.SIGKILL, 30*time.Second)
	if peerMode() {
		// dockerd's own containerd outlives it and blocks its restart; a crash of the whole
		// daemon takes both (the containers' shims survive).
		killPeerContainerd(e.runDir)
	}
	return err
}

func killPeerContainerd(runDir string) {
	ents, _ := os.ReadDir("/proc")
	for _, ent := range ents {
		pid, err := strconv.Atoi(ent.Name())
		if err != nil {
			continue
		}
		b, _ := os.ReadFile(filepath.Join("/proc", ent.Name(), "cmdline"))
		args := strings.Split(string(b), "\x00")
		if filepath.Base(args[0]) == "containerd" && bytes.Contains(b, []byte(runDir)) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
			for i := 0; i < 100; i++ {
				st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
				if err != nil || strings.Contains(string(st), ") Z ") {
					break
				}
				<-time.After(50 * time.Millisecond)
			}
		}
	}
}

func (e *engine) signalAndWait(sig syscall.Signal, grace time.Duration) error {
	e.mu.Lock()
	cmd, done := e.cmd, e.done
	e.mu.Unlock()
	if cmd == nil {
		return nil
	}
	select {
	case <-done:
		return nil
	default:
	}
	_ = cmd.Process.Signal(sig)
	select {
	case <-done:
		return nil
	case <-time.After(grace):
		_ = cmd.Process.Kill()
		<-done
		return fmt.Errorf("the engine did not exit within %s of %v; killed it", grace, sig)
	}
}

// cleanup removes every trace of the engine: its containers, the engine process, mounts under
// its work directory, stray processes started for it, its bridge, and the directory itself.
func (e *engine) cleanup() {
	e.mu.Lock()
	if e.cleaned {
		e.mu.Unlock()
		return
	}
	e.cleaned = true
	cmd, done := e.cmd, e.done
	e.mu.Unlock()
	running := cmd != nil
	if running {
		select {
		case <-done:
			running = false
		default:
		}
	}
	// Containers outlive the engine by design, so remove them while it still answers; if the
	// engine died (a failed crash test), start it once more on its directories to do so.
	if !running && cmd != nil {
		running = e.start() == nil
	}
	if running {
		ctx := context.Background()
		if r := e.dockerCtx(ctx, 30*time.Second, nil, "ps", "-aq"); r.Code == 0 {
			if ids := strings.Fields(r.Stdout); len(ids) > 0 {
				e.dockerCtx(ctx, 120*time.Second, nil, append([]string{"rm", "-f"}, ids...)...)
			}
		}
		// User networks own bridges and nftables tables of their own.
		e.dockerCtx(ctx, 30*time.Second, nil, "network", "prune", "-f")
		if err := e.stop(); err != nil {
			fmt.Fprintln(os.Stderr, "e2e:", err)
		}
	}
	killProcessesMentioning(e.work)
	unmountUnder(e.work)
	_ = exec.Command("ip", "link", "del", e.bridge).Run()
	deleteNftTablesNaming(e.bridge)
	if os.Getenv("BERTH_E2E_KEEP") == "1" {
		fmt.Fprintf(os.Stderr, "e2e: kept %s (engine log: %s)\n", e.work, e.logPath)
		return
	}
	if err := os.RemoveAll(e.work); err != nil {
		fmt.Fprintln(os.Stderr, "e2e: could not remove", e.work+":", err)
	}
}

// deleteNftTablesNaming deletes nftables tables whose name contains name (the engine's NAT and
// forwarding rules for our bridge, which it keeps across restarts for the running containers).
func deleteNftTablesNaming(name string) {
	out, err := exec.Command("nft", "list", "tables").Output()
	if err != nil {
		return
	}
	for _, l := range lines(string(out)) {
		f := strings.Fields(l) // table FAMILY NAME
		if len(f) == 3 && f[0] == "table" && strings.Contains(f[2], name) {
			_ = exec.Command("nft", "delete", "table", f[1], f[2]).Run()
		}
	}
}

// killProcessesMentioning kills, by pid, processes whose command line names dir (shims the
// engine started for this run that are still around after the engine went).
func killProcessesMentioning(dir string) {
	for pid := range processesMentioning(dir) {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
}

// processesMentioning maps the processes (other than this one) whose command line
// names dir to that command line.
func processesMentioning(dir string) map[int]string {
	ents, _ := os.ReadDir("/proc")
	self := os.Getpid()
	found := map[int]string{}
	for _, ent := range ents {
		pid, err := strconv.Atoi(ent.Name())
		if err != nil || pid == self {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", ent.Name(), "cmdline"))
		if err != nil || !bytes.Contains(b, []byte(dir)) {
			continue
		}
		found[pid] = string(bytes.ReplaceAll(b, []byte{0}, []byte{' '}))
	}
	return found
}

// unmountUnder lazily unmounts everything mounted at or under dir, deepest first.
func unmountUnder(dir string) {
	for pass := 0; pass < 3; pass++ {
		mps := mountsUnder(dir)
		if len(mps) == 0 {
			return
		}
		sort.Slice(mps, func(i, j int) bool {
			di, dj := strings.Count(mps[i], "/"), strings.Count(mps[j], "/")
			if di != dj {
				return di > dj
			}
			return mps[i] > mps[j]
		})
		for _, mp := range mps {
			_ = syscall.Unmount(mp, syscall.MNT_DETACH)
		}
	}
}

func mountsUnder(dir string) []string {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 {
			continue
		}
		mp := unescapeMountPath(fields[4])
		if mp == dir || strings.HasPrefix(mp, dir+"/") {
			out = append(out, mp)
		}
	}
	return out
}

// unescapeMountPath undoes mountinfo's octal escapes (\040 for a space, ...).
func unescapeMountPath(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func (e *engine) logTail(n int) string {
	b, err := os.ReadFile(e.logPath)
	if err != nil {
		return "(no engine log: " + err.Error() + ")"
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return "---- engine log (last lines) ----\n" + strings.Join(lines, "\n")
}

// logOnFailure attaches the engine log's tail to t's output if t fails.
func (e *engine) logOnFailure(t *testing.T) {
	t.Cleanup(func() {
		if t.Failed() {
			t.Log(e.logTail(25))
		}
	})
}

// ---------------------------------------------------------------------------------------------
// Running the docker CLI.

type result struct {
	Args   []string
	Stdout string
	Stderr string
	Code   int // -1 when the command could not run or timed out
}

func (r result) String() string {
	return fmt.Sprintf("`docker %s` exited %d\nstdout: %s\nstderr: %s", strings.Join(r.Args, " "), r.Code,
		clip(r.Stdout), clip(r.Stderr))
}

// Out is stdout without surrounding white space.
func (r result) Out() string { return strings.TrimSpace(r.Stdout) }

// Lines is stdout's non-empty lines.
func (r result) Lines() []string { return lines(r.Stdout) }

func lines(s string) []string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.TrimSpace(l) != "" {
			out = append(out, strings.TrimRight(l, "\r"))
		}
	}
	return out
}

func clip(s string) string {
	if len(s) > 3000 {
		return s[:1500] + "\n...\n" + s[len(s)-1500:]
	}
	return s
}

// env is the environment for a docker client talking to this engine.
func (e *engine) env() []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch k {
		case "DOCKER_HOST", "DOCKER_CONTEXT", "DOCKER_CONFIG", "DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH", "DOCKER_API_VERSION":
			continue
		}
		env = append(env, kv)
	}
	return append(env, "DOCKER_HOST="+e.host, "DOCKER_CONFIG="+e.cfgDir)
}

func (e *engine) dockerCtx(ctx context.Context, timeout time.Duration, stdin io.Reader, args ...string) result {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, dockerBin, args...)
	cmd.Env = e.env()
	cmd.Stdin = stdin
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	cmd.WaitDelay = 5 * time.Second
	err := cmd.Run()
	r := result{Args: args, Stdout: out.String(), Stderr: errb.String()}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case ctx.Err() != nil:
		r.Code = -1
		r.Stderr += fmt.Sprintf("\n[e2e: timed out after %s]", timeout)
	case errors.As(err, &ee):
		r.Code = ee.ExitCode()
	default:
		r.Code = -1
		r.Stderr += "\n[e2e: " + err.Error() + "]"
	}
	return r
}

// docker runs the docker CLI against the engine (45s limit) and returns what happened.
func (e *engine) docker(t *testing.T, args ...string) result {
	t.Helper()
	return e.dockerCtx(t.Context(), 45*time.Second, nil, args...)
}

// dockerIn is docker with stdin.
func (e *engine) dockerIn(t *testing.T, stdin io.Reader, args ...string) result {
	t.Helper()
	return e.dockerCtx(t.Context(), 45*time.Second, stdin, args...)
}

// ok runs docker, fails the test unless it exits 0, and returns stdout trimmed.
func (e *engine) ok(t *testing.T, args ...string) string {
	t.Helper()
	r := e.docker(t, args...)
	if r.Code != 0 {
		t.Fatalf("expected success: %s", r)
	}
	return r.Out()
}

// fails runs docker and fails the test unless it exits non-zero.
func (e *engine) fails(t *testing.T, args ...string) result {
	t.Helper()
	r := e.docker(t, args...)
	if r.Code == 0 {
		t.Fatalf("expected a failure: %s", r)
	}
	return r
}

// inspect returns `docker inspect -f FORMAT OBJ`.
func (e *engine) inspect(t *testing.T, format, obj string) string {
	t.Helper()
	return e.ok(t, "inspect", "-f", format, obj)
}

// state returns the container's .State.Status ("" when inspect fails).
func (e *engine) state(t *testing.T, name string) string {
	t.Helper()
	r := e.docker(t, "inspect", "-f", "{{.State.Status}}", name)
	if r.Code != 0 {
		return ""
	}
	return r.Out()
}

// waitState polls until the container's status is want.
func (e *engine) waitState(t *testing.T, name, want string, timeout time.Duration) {
	t.Helper()
	eventually(t, timeout, fmt.Sprintf("container %s is %s", name, want), func() (bool, string) {
		s := e.state(t, name)
		return s == want, "status " + s
	})
}

// rmOnCleanup removes the containers when the test ends, whatever happened.
func (e *engine) rmOnCleanup(t *testing.T, names ...string) {
	t.Cleanup(func() {
		e.dockerCtx(context.Background(), 60*time.Second, nil, append([]string{"rm", "-f", "-v"}, names...)...)
	})
}

func (e *engine) rmiOnCleanup(t *testing.T, refs ...string) {
	t.Cleanup(func() {
		e.dockerCtx(context.Background(), 60*time.Second, nil, append([]string{"rmi", "-f"}, refs...)...)
	})
}

func (e *engine) volumeRmOnCleanup(t *testing.T, names ...string) {
	t.Cleanup(func() {
		e.dockerCtx(context.Background(), 60*time.Second, nil, append([]string{"volume", "rm", "-f"}, names...)...)
	})
}

// runDetached starts `docker run -d --name NAME ARGS...`, removes it at cleanup, and returns the id.
func (e *engine) runDetached(t *testing.T, name string, args ...string) string {
	t.Helper()
	e.rmOnCleanup(t, name)
	id := e.ok(t, append([]string{"run", "-d", "--name", name}, args...)...)
	if !hexID64.MatchString(id) {
		t.Fatalf("run -d printed %q, wanted a 64-hex container id", id)
	}
	return id
}

// sleeper starts a busybox container that just sleeps; it returns the id.
func (e *engine) sleeper(t *testing.T, name string, opts ...string) string {
	t.Helper()
	args := append(append([]string{}, opts...), bbImage, "sleep", "3600")
	return e.runDetached(t, name, args...)
}

// ---------------------------------------------------------------------------------------------
// Raw API access, for what the CLI cannot send.

func (e *engine) httpClient() *http.Client {
	return &http.Client{
		Timeout: 30 * time.Second,
		Transport: &http.Transport{
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				var d net.Dialer
				return d.DialContext(ctx, "unix", e.sock)
			},
		},
	}
}

// ---------------------------------------------------------------------------------------------
// Images.

var (
	bbTarOnce sync.Once
	bbTar     []byte
	bbTarErr  error
)

// busyboxTar is a rootfs tar: /bin/busybox with a link per applet, /etc/passwd and /etc/group
// (root, nobody), /tmp, /root and /www/index.html ("hello from busybox").
func busyboxTar() ([]byte, error) {
	bbTarOnce.Do(func() { bbTar, bbTarErr = makeBusyboxTar() })
	return bbTar, bbTarErr
}

func makeBusyboxTar() ([]byte, error) {
	bin, err := os.ReadFile(busyboxPath)
	if err != nil {
		return nil, err
	}
	list, err := exec.Command(busyboxPath, "--list").Output()
	if err != nil {
		return nil, fmt.Errorf("%s --list: %w", busyboxPath, err)
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	now := time.Now()
	dir := func(name string, mode int64) {
		_ = tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: name + "/", Mode: mode, ModTime: now})
	}
	file := func(name string, mode int64, data []byte) {
		_ = tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode, Size: int64(len(data)), ModTime: now})
		_, _ = tw.Write(data)
	}
	for _, d := range []string{"bin", "etc", "root", "www", "dev", "proc", "sys"} {
		dir(d, 0o755)
	}
	dir("tmp", 0o1777)
	file("bin/busybox", 0o755, bin)
	for _, a := range strings.Fields(string(list)) {
		if a == "busybox" || strings.Contains(a, "/") {
			continue
		}
		_ = tw.WriteHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: "bin/" + a, Linkname: "busybox", Mode: 0o777, ModTime: now})
	}
	file("etc/passwd", 0o644, []byte("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n"))
	file("etc/group", 0o644, []byte("root:x:0:\nnogroup:x:65534:\n"))
	file("www/index.html", 0o644, []byte("hello from busybox\n"))
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// importBusybox imports the busybox rootfs (plus extra files) as ref with CMD ["/bin/sh"] and
// the given extra --change lines; ref "" makes an untagged (dangling) image. It returns the id.
func (e *engine) importBusybox(ref string, changes []string, extra map[string]string) (string, error) {
	base, err := busyboxTar()
	if err != nil {
		return "", err
	}
	data := base
	if len(extra) > 0 {
		data = appendFiles(base, extra)
	}
	args := []string{"import", "-c", `CMD ["/bin/sh"]`}
	for _, c := range changes {
		args = append(args, "-c", c)
	}
	args = append(args, "-")
	if ref != "" {
		args = append(args, ref)
	}
	r := e.dockerCtx(context.Background(), 120*time.Second, bytes.NewReader(data), args...)
	if r.Code != 0 {
		return "", fmt.Errorf("import %s: %s", ref, r)
	}
	return r.Out(), nil
}

// appendFiles returns a tar with base's entries followed by the given files.
func appendFiles(base []byte, files map[string]string) []byte {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	tr := tar.NewReader(bytes.NewReader(base))
	for {
		h, err := tr.Next()
		if err != nil {
			break
		}
		_ = tw.WriteHeader(h)
		_, _ = io.Copy(tw, tr)
	}
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		_ = tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: n, Mode: 0o644, Size: int64(len(files[n])), ModTime: time.Now()})
		_, _ = tw.Write([]byte(files[n]))
	}
	_ = tw.Close()
	return buf.Bytes()
}

// tinyTar is a one-file rootfs: the cheapest distinct image.
func tinyTar(content string) []byte {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	_ = tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "marker", Mode: 0o644, Size: int64(len(content)), ModTime: time.Now()})
	_, _ = tw.Write([]byte(content))
	_ = tw.Close()
	return buf.Bytes()
}

// newImage imports a fresh busybox image under ref (unique content, so a unique id), removed at
// cleanup; it returns the image id ("sha256:...").
func (e *engine) newImage(t *testing.T, ref string, changes ...string) string {
	t.Helper()
	if ref != "" {
		e.rmiOnCleanup(t, ref)
	}
	id, err := e.importBusybox(ref, changes, map[string]string{"etc/e2e-unique": randHex(16)})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(id, "sha256:") {
		t.Fatalf("import printed %q, wanted sha256:<id>", id)
	}
	e.rmiOnCleanup(t, id)
	return id
}

// shortID is the 12-hex form of an id, with or without "sha256:".
func shortID(id string) string {
	id = strings.TrimPrefix(id, "sha256:")
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

// ---------------------------------------------------------------------------------------------
// Polling, names, small helpers.

// eventually polls cond every 100ms until it holds, failing the test after timeout with cond's
// last explanation.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		okNow, why := cond()
		if okNow {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s (last: %s)", what, timeout, why)
		}
		select {
		case <-t.Context().Done():
			t.Fatalf("%s: test ended", what)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// consistently checks that cond holds throughout d (polling every 200ms): for "stays so" claims.
func consistently(t *testing.T, d time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	end := time.Now().Add(d)
	for time.Now().Before(end) {
		if okNow, why := cond(); !okNow {
			t.Fatalf("%s: stopped holding (%s)", what, why)
		}
		select {
		case <-t.Context().Done():
			return
		case <-time.After(200 * time.Millisecond): // observation interval
		}
	}
}

func randHex(n int) string {
	b := make([]byte, (n+1)/2)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)[:n]
}

func randInt(n int) int {
	v, _ := rand.Int(rand.Reader, big.NewInt(int64(n)))
	return int(v.Int64())
}

// uniq returns prefix-XXXXXX: a container/volume/image name no other test uses.
func uniq(prefix string) string { return prefix + "-" + randHex(6) }

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func mustContain(t *testing.T, what, got, want string) {
	t.Helper()
	if !strings.Contains(got, want) {
		t.Fatalf("%s: wanted %q in:\n%s", what, want, clip(got))
	}
}

func mustNotContain(t *testing.T, what, got, unwanted string) {
	t.Helper()
	if strings.Contains(got, unwanted) {
		t.Fatalf("%s: did not want %q in:\n%s", what, unwanted, clip(got))
	}
}

func mustEqual(t *testing.T, what, got, want string) {
	t.Helper()
	if got != want {
		t.Fatalf("%s: got %q, want %q", what, got, want)
	}
}
