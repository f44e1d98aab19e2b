package e2e

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// asyncDocker is a docker command running in the background whose output is collected.
type asyncDocker struct {
	cmd  *exec.Cmd
	mu   sync.Mutex
	out  bytes.Buffer
	done chan struct{}
	err  error
}

func (a *asyncDocker) Write(p []byte) (int, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.out.Write(p)
}

// startDocker starts a docker command in the background; it is killed at cleanup if still running.
func (e *engine) startDocker(t *testing.T, args ...string) *asyncDocker {
	t.Helper()
	cmd := exec.Command(dockerBin, args...)
	cmd.Env = e.env()
	a := &asyncDocker{cmd: cmd, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = a, a
	if err := cmd.Start(); err != nil {
		t.Fatalf("start docker %v: %v", args, err)
	}
	go func() {
		a.err = cmd.Wait() // returns once all output is copied
		close(a.done)
	}()
	t.Cleanup(func() {
		select {
		case <-a.done:
		default:
			_ = cmd.Process.Kill()
			<-a.done
		}
	})
	return a
}

func (a *asyncDocker) output() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.out.String()
}

func (a *asyncDocker) exited() bool {
	select {
	case <-a.done:
		return true
	default:
		return false
	}
}

// TestContainersRunForeground: docker run streams output, returns the container's exit code,
// keeps stdout and stderr apart, and passes stdin with -i (only with -i).
func TestContainersRunForeground(t *testing.T) {
	e := needEngine(t)
	mustEqual(t, "run prints the output", e.ok(t, "run", "--rm", bbImage, "echo", "hello"), "hello")

	r := e.docker(t, "run", "--rm", bbImage, "sh", "-c", "exit 7")
	if r.Code != 7 {
		t.Fatalf("exit code of docker run: %s (want 7)", r)
	}
	r = e.docker(t, "run", "--rm", bbImage, "sh", "-c", "echo to-out; echo to-err >&2")
	if r.Code != 0 || r.Out() != "to-out" || !strings.Contains(r.Stderr, "to-err") || strings.Contains(r.Stdout, "to-err") {
		t.Fatalf("stdout and stderr kept apart: %s", r)
	}
	r = e.dockerIn(t, strings.NewReader("piped\nsecond\nthird\n"), "run", "--rm", "-i", bbImage, "sh", "-c", "cat; echo done")
	if r.Code != 0 || r.Out() != "piped\nsecond\nthird\ndone" {
		t.Fatalf("run -i passes stdin through and ends on EOF: %s", r)
	}
	r = e.dockerIn(t, strings.NewReader("not for you\n"), "run", "--rm", bbImage, "cat")
	if r.Code != 0 || r.Out() != "" {
		t.Fatalf("without -i the container gets no stdin: %s", r)
	}
	r = e.docker(t, "run", "--rm", bbImage, "/no/such/binary")
	if r.Code != 127 && r.Code != 126 {
		t.Fatalf("run of a missing binary: %s (want 127 or 126)", r)
	}
	if strings.TrimSpace(r.Stderr) == "" {
		t.Fatalf("run of a missing binary says nothing: %s", r)
	}
	mustContain(t, "run of a missing image", e.fails(t, "run", "--rm", "--pull", "never", "nosuch-"+randHex(6)+":0", "true").Stderr, "No such image")
}

// docker run sends the start as soon as it has the attach's 101: on a busy engine every
// short-lived container's output still reaches its client.
func TestContainersRunOutputUnderLoad(t *testing.T) {
	e := needEngine(t)
	const workers, runs = 4, 6
	errs := make(chan string, workers*runs)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < runs; i++ {
				want := fmt.Sprintf("out-%d-%d", w, i)
				if r := e.docker(t, "run", "--rm", bbImage, "echo", want); r.Code != 0 || r.Out() != want {
					errs <- fmt.Sprintf("docker run --rm echo %s: %s", want, r)
				}
			}
		}(w)
	}
	wg.Wait()
	close(errs)
	var lost []string
	for e := range errs {
		lost = append(lost, e)
	}
	if len(lost) > 0 {
		t.Fatalf("%d of %d runs lost their output:\n%s", len(lost), workers*runs, strings.Join(lost, "\n"))
	}
}

// TestContainersRunOptions: --name, -e, -w, -u, --entrypoint, --hostname, -l, --read-only,
// --tmpfs, -m, --pids-limit, as the process inside sees them.
func TestContainersRunOptions(t *testing.T) {
	e := needEngine(t)

	t.Run("name", func(t *testing.T) {
		name := uniq("named")
		e.rmOnCleanup(t, name)
		e.ok(t, "run", "--name", name, bbImage, "true")
		mustEqual(t, "inspect .Name", e.inspect(t, "{{.Name}}", name), "/"+name)
		r := e.fails(t, "run", "--name", name, bbImage, "true")
		mustContain(t, "a second container with the same name", r.Stderr, "already in use")
	})
	t.Run("env", func(t *testing.T) {
		out := e.ok(t, "run", "--rm", "-e", "FOO=bar", "-e", "TWO=a b", bbImage, "env")
		env := lines(out)
		if !contains(env, "FOO=bar") || !contains(env, "TWO=a b") {
			t.Fatalf("env in the container lacks FOO=bar or TWO=a b:\n%s", out)
		}
		mustContain(t, "a default PATH", "\n"+out, "\nPATH=/")
	})
	t.Run("workdir", func(t *testing.T) {
		mustEqual(t, "-w /www", e.ok(t, "run", "--rm", "-w", "/www", bbImage, "cat", "index.html"), "hello from busybox")
		mustEqual(t, "-w of a missing dir creates it", e.ok(t, "run", "--rm", "-w", "/tmp/made/here", bbImage, "pwd"), "/tmp/made/here")
	})
	t.Run("user", func(t *testing.T) {
		mustEqual(t, "-u 65534", e.ok(t, "run", "--rm", "-u", "65534", bbImage, "id", "-u"), "65534")
		mustEqual(t, "-u nobody", e.ok(t, "run", "--rm", "-u", "nobody", bbImage, "id", "-un"), "nobody")
		out := e.ok(t, "run", "--rm", "-u", "1234:5678", bbImage, "sh", "-c", "id -u; id -g")
		mustEqual(t, "-u UID:GID", out, "1234\n5678")
		mustEqual(t, "the default user is root", e.ok(t, "run", "--rm", bbImage, "id", "-u"), "0")
		r := e.docker(t, "run", "--rm", "-u", "65534", bbImage, "touch", "/root/x")
		if r.Code == 0 {
			t.Fatalf("nobody could write to /root: %s", r)
		}
	})
	t.Run("entrypoint", func(t *testing.T) {
		name := uniq("entry")
		e.rmOnCleanup(t, name)
		mustEqual(t, "--entrypoint", e.ok(t, "run", "--name", name, "--entrypoint", "/bin/echo", bbImage, "hi", "there"), "hi there")
		mustEqual(t, "inspect .Config.Entrypoint", e.inspect(t, "{{json .Config.Entrypoint}}", name), `["/bin/echo"]`)
	})
	t.Run("hostname", func(t *testing.T) {
		out := e.ok(t, "run", "--rm", "--hostname", "e2ehost", bbImage, "sh", "-c", "hostname; cat /etc/hostname")
		mustEqual(t, "--hostname", out, "e2ehost\ne2ehost")
	})
	t.Run("labels", func(t *testing.T) {
		name := uniq("lbl")
		e.rmOnCleanup(t, name)
		e.ok(t, "create", "--name", name, "-l", "e2e.a=1", "-l", "e2e.flag", bbImage)
		labels := e.inspect(t, "{{json .Config.Labels}}", name)
		var m map[string]string
		if err := json.Unmarshal([]byte(labels), &m); err != nil || m["e2e.a"] != "1" {
			t.Fatalf("labels: %s (%v)", labels, err)
		}
		if v, found := m["e2e.flag"]; !found || v != "" {
			t.Fatalf("label without a value: %s", labels)
		}
	})
	t.Run("read-only and tmpfs", func(t *testing.T) {
		r := e.docker(t, "run", "--rm", "--read-only", bbImage, "touch", "/newfile")
		if r.Code == 0 || !strings.Contains(r.Stderr+r.Stdout, "Read-only file system") {
			t.Fatalf("--read-only: %s", r)
		}
		out := e.ok(t, "run", "--rm", "--read-only", "--tmpfs", "/scratch", bbImage, "sh", "-c",
			"echo written > /scratch/f && cat /scratch/f && grep ' /scratch ' /proc/mounts")
		mustContain(t, "--tmpfs is writable on a read-only rootfs", out, "written")
		mustContain(t, "--tmpfs is a tmpfs", out, "tmpfs /scratch tmpfs")
		mustEqual(t, "the image's files are readable", e.ok(t, "run", "--rm", "--read-only", bbImage, "cat", "/www/index.html"), "hello from busybox")
	})
	t.Run("memory", func(t *testing.T) {
		name := uniq("mem")
		e.sleeper(t, name, "-m", "64m")
		mustEqual(t, "inspect .HostConfig.Memory", e.inspect(t, "{{.HostConfig.Memory}}", name), "67108864")
		out := e.ok(t, "stats", "--no-stream", "--format", "{{.MemUsage}}", name)
		mustContain(t, "stats shows the 64MiB limit", out, "64MiB")
	})
	t.Run("cgroupns", func(t *testing.T) {
		// A cgroup namespace of its own by default: the container's cgroup is the root it
		// sees, and /sys/fs/cgroup shows its own limits.
		out := e.ok(t, "run", "--rm", "-m", "64m", bbImage, "sh", "-c",
			"grep memory /proc/self/cgroup; cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max")
		mustContain(t, "the default cgroupns is private", out, ":/\n")
		mustContain(t, "the container sees its own memory limit", out, "67108864")
		name := uniq("cgns")
		e.rmOnCleanup(t, name)
		out = e.ok(t, "run", "--name", name, "--cgroupns", "host", bbImage, "cat", "/proc/self/cgroup")
		id := e.inspect(t, "{{.Id}}", name)
		mustContain(t, "--cgroupns host shows the host's cgroup paths", out, id)
		mustEqual(t, "inspect .HostConfig.CgroupnsMode", e.inspect(t, "{{.HostConfig.CgroupnsMode}}", name), "host")
	})
	t.Run("priority", func(t *testing.T) {
		// Containers run at the normal priority, whether or not a waiting runtime (which
		// waits at idle priority) created them: the second and third runs take one.
		for i := 0; i < 3; i++ {
			out := e.ok(t, "run", "--rm", bbImage, "sh", "-c", "cut -d' ' -f19 /proc/self/stat; cut -d' ' -f19 /proc/1/stat")
			mustEqual(t, "nice of a container's processes", out, "0\n0")
		}
	})
	t.Run("privileged", func(t *testing.T) {
		// Every capability the host's bounding set holds (not more: the kernel would refuse
		// the container's start), as Docker and containerd grant.
		status, err := os.ReadFile("/proc/self/status")
		if err != nil {
			t.Fatal(err)
		}
		var bnd string
		for _, l := range strings.Split(string(status), "\n") {
			if v, ok := strings.CutPrefix(l, "CapBnd:"); ok {
				bnd = strings.TrimSpace(v)
			}
		}
		out := e.ok(t, "run", "--rm", "--privileged", bbImage, "grep", "CapEff", "/proc/self/status")
		mustContain(t, "--privileged has the host's capabilities", out, bnd)
	})
	t.Run("pids-limit", func(t *testing.T) {
		name := uniq("pids")
		e.rmOnCleanup(t, name)
		e.ok(t, "create", "--name", name, "--pids-limit", "20", bbImage)
		mustEqual(t, "inspect .HostConfig.PidsLimit", e.inspect(t, "{{.HostConfig.PidsLimit}}", name), "20")
		r := e.docker(t, "run", "--rm", "--pids-limit", "8", bbImage, "sh", "-c",
			"i=0; while [ $i -lt 30 ]; do sleep 5 & i=$((i+1)); done; echo all-forked")
		all := r.Stdout + r.Stderr
		if strings.Contains(all, "all-forked") || !(strings.Contains(all, "can't fork") || strings.Contains(all, "Resource temporarily unavailable")) {
			t.Fatalf("--pids-limit 8 let 30 processes start: %s", r)
		}
	})
}

// TestContainersLifecycle: create, start, stop -t, restart, kill, kill -s, pause/unpause, rm.
func TestContainersLifecycle(t *testing.T) {
	e := needEngine(t)
	name := uniq("life")
	e.rmOnCleanup(t, name)

	id := e.ok(t, "create", "--name", name, bbImage, "sleep", "3600")
	if !hexID64.MatchString(id) {
		t.Fatalf("create printed %q, want a 64-hex id", id)
	}
	mustEqual(t, "status after create", e.state(t, name), "created")
	mustContain(t, "ps -a shows Created", e.ok(t, "ps", "-a", "-f", "name="+name, "--format", "{{.Status}}"), "Created")
	mustEqual(t, "ps without -a hides it", e.ok(t, "ps", "-q", "-f", "name="+name), "")

	mustEqual(t, "start prints the name", e.ok(t, "start", name), name)
	mustEqual(t, "status after start", e.state(t, name), "running")
	mustContain(t, "ps shows Up", e.ok(t, "ps", "-f", "name="+name, "--format", "{{.Status}}"), "Up")
	pid1 := e.inspect(t, "{{.State.Pid}}", name)
	started1 := e.inspect(t, "{{.State.StartedAt}}", name)
	if _, err := os.Stat("/proc/" + pid1); err != nil || pid1 == "0" {
		t.Fatalf(".State.Pid %s is not a live host process: %v", pid1, err)
	}
	e.ok(t, "start", name) // starting a running container is fine

	// sleep as PID 1 ignores SIGTERM: stop -t 1 must kill it after about a second, not ten.
	t0 := time.Now()
	e.ok(t, "stop", "-t", "1", name)
	if el := time.Since(t0); el > 8*time.Second {
		t.Fatalf("stop -t 1 took %s", el)
	}
	mustEqual(t, "status after stop", e.state(t, name), "exited")
	if code := e.inspect(t, "{{.State.ExitCode}}", name); code != "137" && code != "143" {
		t.Fatalf("exit code after stop: %s, want 137 (or 143)", code)
	}
	mustContain(t, "ps -a shows Exited", e.ok(t, "ps", "-a", "-f", "name="+name, "--format", "{{.Status}}"), "Exited (")
	e.ok(t, "stop", name) // stopping a stopped container is fine

	e.ok(t, "restart", "-t", "1", name)
	mustEqual(t, "status after restart", e.state(t, name), "running")
	if started2 := e.inspect(t, "{{.State.StartedAt}}", name); started2 == started1 {
		t.Fatalf("restart did not start a new process (StartedAt still %s)", started2)
	}
	if pid2 := e.inspect(t, "{{.State.Pid}}", name); pid2 == pid1 || pid2 == "0" {
		t.Fatalf("restart: pid %s -> %s", pid1, pid2)
	}

	// pause / unpause
	e.ok(t, "pause", name)
	mustEqual(t, "status after pause", e.state(t, name), "paused")
	mustContain(t, "ps shows (Paused)", e.ok(t, "ps", "-f", "name="+name, "--format", "{{.Status}}"), "(Paused)")
	r := e.fails(t, "exec", name, "true")
	mustContain(t, "exec in a paused container", strings.ToLower(r.Stderr), "paused")
	e.ok(t, "unpause", name)
	mustEqual(t, "status after unpause", e.state(t, name), "running")
	mustEqual(t, "exec after unpause", e.ok(t, "exec", name, "echo", "alive"), "alive")

	// kill: SIGKILL by default.
	e.ok(t, "kill", name)
	e.waitState(t, name, "exited", 10*time.Second)
	mustEqual(t, "exit code after kill", e.inspect(t, "{{.State.ExitCode}}", name), "137")

	// rm refuses a running container without -f.
	e.ok(t, "start", name)
	e.fails(t, "rm", name)
	mustEqual(t, "rm without -f leaves it running", e.state(t, name), "running")
	e.ok(t, "rm", "-f", name)
	r = e.fails(t, "container", "inspect", name)
	mustContain(t, "inspect after rm -f", r.Stderr, "No such container")

	// rm of a stopped container.
	other := uniq("life2")
	e.rmOnCleanup(t, other)
	e.ok(t, "run", "--name", other, bbImage, "true")
	mustEqual(t, "rm prints the name", e.ok(t, "rm", other), other)
	e.fails(t, "container", "inspect", other)
}

// TestContainersSignals: stop delivers SIGTERM first, kill -s delivers the named signal.
func TestContainersSignals(t *testing.T) {
	e := needEngine(t)
	trapper := `trap 'echo got-term; exit 0' TERM; trap 'echo got-usr1; exit 3' USR1; echo ready; while :; do sleep 1 & wait $!; done`

	a := uniq("term")
	e.runDetached(t, a, bbImage, "sh", "-c", trapper)
	eventually(t, 10*time.Second, "the trap is set", func() (bool, string) {
		out := e.docker(t, "logs", a).Out()
		return out == "ready", out
	})
	t0 := time.Now()
	e.ok(t, "stop", "-t", "20", a)
	if el := time.Since(t0); el > 10*time.Second {
		t.Fatalf("stop waited %s although the process exits on SIGTERM", el)
	}
	mustContain(t, "stop sends SIGTERM", e.ok(t, "logs", a), "got-term")
	mustEqual(t, "exit code after a clean SIGTERM exit", e.inspect(t, "{{.State.ExitCode}}", a), "0")

	b := uniq("usr1")
	e.runDetached(t, b, bbImage, "sh", "-c", trapper)
	eventually(t, 10*time.Second, "the trap is set", func() (bool, string) {
		out := e.docker(t, "logs", b).Out()
		return out == "ready", out
	})
	e.ok(t, "kill", "-s", "USR1", b)
	mustEqual(t, "docker wait after kill -s USR1", e.ok(t, "wait", b), "3")
	mustContain(t, "kill -s USR1 reaches the process", e.ok(t, "logs", b), "got-usr1")

	r := e.fails(t, "kill", b)
	mustContain(t, "kill of a stopped container", strings.ToLower(r.Stderr), "not running")
}

// TestContainersAutoRemove: --rm removes the container when it exits, foreground or detached.
func TestContainersAutoRemove(t *testing.T) {
	e := needEngine(t)
	a := uniq("rmfg")
	e.rmOnCleanup(t, a)
	mustEqual(t, "run --rm output", e.ok(t, "run", "--rm", "--name", a, bbImage, "echo", "bye"), "bye")
	eventually(t, 10*time.Second, "run --rm container is gone", func() (bool, string) {
		r := e.docker(t, "container", "inspect", a)
		return r.Code != 0, r.Out()
	})

	b := uniq("rmbg")
	e.runDetached(t, b, "--rm", bbImage, "sleep", "3600")
	e.ok(t, "stop", "-t", "1", b)
	eventually(t, 10*time.Second, "run -d --rm container is gone after stop", func() (bool, string) {
		r := e.docker(t, "container", "inspect", b)
		return r.Code != 0, r.Out()
	})
}

// TestContainersPs: ps -a -q -n -l --no-trunc and the id/name/ancestor/status/label/exited filters.
func TestContainersPs(t *testing.T) {
	e := needEngine(t)
	label := "e2e.ps=" + randHex(8)
	run, ex3, ex0, cr := uniq("psrun"), uniq("psex3"), uniq("psex0"), uniq("pscr")
	e.rmOnCleanup(t, run, ex3, ex0, cr)
	runID := e.runDetached(t, run, "-l", label, "-l", "e2e.role=server", bbImage, "sleep", "3600")
	if r := e.docker(t, "run", "--name", ex3, "-l", label, bbImage, "sh", "-c", "exit 3"); r.Code != 3 {
		t.Fatalf("run exit 3: %s", r)
	}
	e.ok(t, "create", "--name", cr, "-l", label, bbImage, "true")
	e.ok(t, "run", "--name", ex0, "-l", label, bbImage, "true")

	names := func(args ...string) string {
		t.Helper()
		l := e.docker(t, append([]string{"ps", "--format", "{{.Names}}", "-f", "label=" + label}, args...)...).Lines()
		sort.Strings(l)
		return strings.Join(l, " ")
	}
	sorted := func(s ...string) string { sort.Strings(s); return strings.Join(s, " ") }

	mustEqual(t, "ps shows running containers only", names(), run)
	mustEqual(t, "ps -a shows all", names("-a"), sorted(run, ex3, ex0, cr))
	mustEqual(t, "-f status=running", names("-a", "-f", "status=running"), run)
	mustEqual(t, "-f status=exited", names("-a", "-f", "status=exited"), sorted(ex3, ex0))
	mustEqual(t, "-f status=created", names("-a", "-f", "status=created"), cr)
	mustEqual(t, "-f exited=3", names("-a", "-f", "exited=3"), ex3)
	mustEqual(t, "-f exited=0", names("-a", "-f", "exited=0"), ex0)
	mustEqual(t, "-f name=NAME", names("-a", "-f", "name="+run), run)
	mustEqual(t, "-f name=<part of the name>", names("-a", "-f", "name="+strings.TrimPrefix(ex3, "psex3-")), ex3)
	mustEqual(t, "-f id=<prefix>", names("-a", "-f", "id="+runID[:8]), run)
	mustEqual(t, "-f ancestor=<image>", names("-a", "-f", "ancestor="+bbImage), sorted(run, ex3, ex0, cr))
	bbID := e.ok(t, "image", "inspect", "-f", "{{.Id}}", bbImage)
	mustEqual(t, "-f ancestor=<image id>", names("-f", "ancestor="+shortID(bbID)), run)
	mustEqual(t, "-f label=KEY=VALUE (two labels)", names("-a", "-f", "label=e2e.role=server"), run)
	mustEqual(t, "-f label=KEY", names("-a", "-f", "label=e2e.role"), run)
	mustEqual(t, "two filters of different kinds combine", names("-a", "-f", "status=exited", "-f", "exited=3"), ex3)
	mustEqual(t, "two status filters are alternatives", names("-a", "-f", "status=created", "-f", "status=running"), sorted(cr, run))

	q := e.docker(t, "ps", "-a", "-q", "-f", "label="+label).Lines()
	if len(q) != 4 || !contains(q, runID[:12]) {
		t.Fatalf("ps -a -q: %v, want 4 short ids including %s", q, runID[:12])
	}
	for _, l := range q {
		if !hexID12.MatchString(l) {
			t.Fatalf("ps -q printed %q", l)
		}
	}
	nt := e.docker(t, "ps", "-q", "--no-trunc", "-f", "label="+label).Lines()
	if len(nt) != 1 || nt[0] != runID {
		t.Fatalf("ps -q --no-trunc: %v, want [%s]", nt, runID)
	}
	mustEqual(t, "ps -a -n 1 is the newest container", e.ok(t, "ps", "-a", "-n", "1", "--format", "{{.Names}}"), ex0)
	mustEqual(t, "ps -a -n 2", e.ok(t, "ps", "-a", "-n", "2", "--format", "{{.Names}}"), ex0+"\n"+cr)
	mustEqual(t, "ps -l", e.ok(t, "ps", "-l", "--format", "{{.Names}}"), ex0)

	statuses := e.ok(t, "ps", "-a", "-f", "label="+label, "--format", "{{.Names}}|{{.Status}}")
	for _, want := range []string{ex3 + "|Exited (3)", ex0 + "|Exited (0)", cr + "|Created", run + "|Up"} {
		mustContain(t, "ps status column", statuses, want)
	}
	table := e.ok(t, "ps", "-a", "-f", "label="+label)
	for _, want := range []string{"CONTAINER ID", "IMAGE", "COMMAND", "STATUS", "NAMES", runID[:12], bbImage, run} {
		mustContain(t, "ps table", table, want)
	}
	mustContain(t, "ps --no-trunc shows the full command", e.ok(t, "ps", "--no-trunc", "-f", "name="+run), `"sleep 3600"`)
}

// TestContainersInspect: docker inspect shows the container as created and running.
func TestContainersInspect(t *testing.T) {
	e := needEngine(t)
	name := uniq("insp")
	id := e.sleeper(t, name, "-e", "E2E=1", "-l", "e2e.k=v")

	var got []struct {
		Id      string
		Name    string
		Path    string
		Args    []string
		Image   string
		Created string
		State   struct {
			Status    string
			Running   bool
			Pid       int
			StartedAt string
		}
		Config struct {
			Image  string
			Cmd    []string
			Env    []string
			Labels map[string]string
		}
		HostConfig struct {
			RestartPolicy struct{ Name string }
		}
		RestartCount int
	}
	raw := e.ok(t, "inspect", name)
	if err := json.Unmarshal([]byte(raw), &got); err != nil || len(got) != 1 {
		t.Fatalf("inspect is not a one-element JSON array (%v):\n%s", err, clip(raw))
	}
	c := got[0]
	bbID := e.ok(t, "image", "inspect", "-f", "{{.Id}}", bbImage)
	switch {
	case c.Id != id:
		t.Fatalf("Id %s, want %s", c.Id, id)
	case c.Name != "/"+name:
		t.Fatalf("Name %q", c.Name)
	case c.Path != "sleep" || strings.Join(c.Args, " ") != "3600":
		t.Fatalf("Path %q Args %v", c.Path, c.Args)
	case c.Image != bbID || c.Config.Image != bbImage:
		t.Fatalf("Image %q Config.Image %q, want %s and %s", c.Image, c.Config.Image, bbID, bbImage)
	case !c.State.Running || c.State.Status != "running" || c.State.Pid <= 0:
		t.Fatalf("State %+v", c.State)
	case strings.Join(c.Config.Cmd, " ") != "sleep 3600":
		t.Fatalf("Config.Cmd %v", c.Config.Cmd)
	case !contains(c.Config.Env, "E2E=1"):
		t.Fatalf("Config.Env %v", c.Config.Env)
	case c.Config.Labels["e2e.k"] != "v":
		t.Fatalf("Config.Labels %v", c.Config.Labels)
	case c.HostConfig.RestartPolicy.Name != "no" && c.HostConfig.RestartPolicy.Name != "":
		t.Fatalf("RestartPolicy %q", c.HostConfig.RestartPolicy.Name)
	case c.RestartCount != 0:
		t.Fatalf("RestartCount %d", c.RestartCount)
	}
	for what, ts := range map[string]string{"Created": c.Created, "State.StartedAt": c.State.StartedAt} {
		if _, err := time.Parse(time.RFC3339Nano, ts); err != nil {
			t.Fatalf("%s %q is not RFC 3339: %v", what, ts, err)
		}
	}
	mustEqual(t, "inspect by id prefix", e.ok(t, "inspect", "-f", "{{.Name}}", id[:10]), "/"+name)
	mustEqual(t, "container inspect", e.ok(t, "container", "inspect", "-f", "{{.Id}}", name), id)
	mustEqual(t, "inspect --type container", e.ok(t, "inspect", "--type", "container", "-f", "{{.Id}}", name), id)
	r := e.fails(t, "container", "inspect", "nosuch-"+randHex(6))
	mustContain(t, "inspect of a missing container", r.Stderr, "No such container")
}

var logTimestamp = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d) `)

// TestContainersLogs: logs of a finished container, --tail, -t, stderr kept apart, and -f.
func TestContainersLogs(t *testing.T) {
	e := needEngine(t)
	name := uniq("logs")
	e.rmOnCleanup(t, name)
	e.ok(t, "run", "--name", name, bbImage, "sh", "-c", "for i in 1 2 3 4 5; do echo line$i; done")

	mustEqual(t, "logs", e.ok(t, "logs", name), "line1\nline2\nline3\nline4\nline5")
	mustEqual(t, "logs --tail 2", e.ok(t, "logs", "--tail", "2", name), "line4\nline5")
	mustEqual(t, "logs --tail 0", e.ok(t, "logs", "--tail", "0", name), "")
	mustEqual(t, "logs --tail all", e.ok(t, "logs", "--tail", "all", name), "line1\nline2\nline3\nline4\nline5")
	ts := lines(e.ok(t, "logs", "-t", name))
	if len(ts) != 5 {
		t.Fatalf("logs -t: %d lines, want 5: %v", len(ts), ts)
	}
	for i, l := range ts {
		if !logTimestamp.MatchString(l) || !strings.HasSuffix(l, " line"+strconv.Itoa(i+1)) {
			t.Fatalf("logs -t line %q: want an RFC 3339 timestamp, a space and line%d", l, i+1)
		}
	}
	mustEqual(t, "logs -t --tail 1", regexp.MustCompile(`^\S+ `).ReplaceAllString(e.ok(t, "logs", "-t", "--tail", "1", name), ""), "line5")

	errName := uniq("logerr")
	e.rmOnCleanup(t, errName)
	e.ok(t, "run", "--name", errName, bbImage, "sh", "-c", "echo to-out; echo to-err >&2")
	r := e.docker(t, "logs", errName)
	if r.Code != 0 || r.Out() != "to-out" || strings.TrimSpace(r.Stderr) != "to-err" {
		t.Fatalf("logs keeps stderr on stderr: %s", r)
	}

	// -f follows new output and ends when the container does.
	follow := uniq("logf")
	e.runDetached(t, follow, bbImage, "sh", "-c", "echo first; while [ ! -e /tmp/go ]; do sleep 0.1; done; echo second")
	f := e.startDocker(t, "logs", "-f", follow)
	eventually(t, 10*time.Second, "logs -f shows the first line", func() (bool, string) {
		return strings.Contains(f.output(), "first"), f.output()
	})
	if f.exited() {
		t.Fatalf("logs -f ended while the container runs: %q", f.output())
	}
	e.ok(t, "exec", follow, "touch", "/tmp/go")
	eventually(t, 10*time.Second, "logs -f shows the line written later", func() (bool, string) {
		return strings.Contains(f.output(), "second"), f.output()
	})
	eventually(t, 10*time.Second, "logs -f ends when the container exits", func() (bool, string) {
		return f.exited(), f.output()
	})
	if f.err != nil {
		t.Fatalf("logs -f: %v: %s", f.err, f.output())
	}
	mustEqual(t, "logs -f output", strings.TrimSpace(f.output()), "first\nsecond")
}

// TestContainersExec: exec output, -e, -u, -w, -i, -d, exit codes, and refusal when stopped.
func TestContainersExec(t *testing.T) {
	e := needEngine(t)
	name := uniq("exec")
	e.sleeper(t, name, "-e", "CENV=from-run")

	mustEqual(t, "exec output", e.ok(t, "exec", name, "echo", "hi"), "hi")
	mustEqual(t, "exec sees the container's env", e.ok(t, "exec", name, "sh", "-c", "echo $CENV"), "from-run")
	mustEqual(t, "exec -e", e.ok(t, "exec", "-e", "X=1", name, "sh", "-c", "echo $X"), "1")
	mustEqual(t, "exec -u 65534", e.ok(t, "exec", "-u", "65534", name, "id", "-u"), "65534")
	mustEqual(t, "exec -u nobody", e.ok(t, "exec", "-u", "nobody", name, "id", "-un"), "nobody")
	mustEqual(t, "exec -w", e.ok(t, "exec", "-w", "/www", name, "cat", "index.html"), "hello from busybox")
	mustContain(t, "exec shares the container's processes", e.ok(t, "exec", name, "ps"), "sleep 3600")

	r := e.docker(t, "exec", name, "sh", "-c", "echo partial; exit 5")
	if r.Code != 5 || r.Out() != "partial" {
		t.Fatalf("exec exit code: %s (want 5 and its output)", r)
	}
	r = e.docker(t, "exec", name, "/no/such/binary")
	if r.Code == 0 {
		t.Fatalf("exec of a missing binary succeeded: %s", r)
	}
	r = e.dockerIn(t, strings.NewReader("in\n"), "exec", "-i", name, "cat")
	if r.Code != 0 || r.Out() != "in" {
		t.Fatalf("exec -i: %s", r)
	}
	e.ok(t, "exec", "-d", name, "sh", "-c", "echo detached > /tmp/d")
	eventually(t, 10*time.Second, "exec -d ran", func() (bool, string) {
		r := e.docker(t, "exec", name, "cat", "/tmp/d")
		return r.Out() == "detached", r.String()
	})

	e.ok(t, "stop", "-t", "1", name)
	r = e.fails(t, "exec", name, "true")
	mustContain(t, "exec in a stopped container", strings.ToLower(r.Stderr), "not running")
	r = e.fails(t, "exec", "nosuch-"+randHex(6), "true")
	mustContain(t, "exec in a missing container", r.Stderr, "No such container")
}

// TestContainersWait: docker wait blocks until the container exits and prints its code.
func TestContainersWait(t *testing.T) {
	e := needEngine(t)
	name := uniq("wait")
	e.runDetached(t, name, bbImage, "sh", "-c", "while [ ! -e /tmp/go ]; do sleep 0.1; done; exit 4")
	w := e.startDocker(t, "wait", name)
	consistently(t, time.Second, "docker wait blocks while the container runs", func() (bool, string) {
		return !w.exited(), w.output()
	})
	e.ok(t, "exec", name, "touch", "/tmp/go")
	eventually(t, 10*time.Second, "docker wait returns once the container exits", func() (bool, string) {
		return w.exited(), w.output()
	})
	mustEqual(t, "docker wait prints the exit code", strings.TrimSpace(w.output()), "4")
	mustEqual(t, "docker wait on an exited container", e.ok(t, "wait", name), "4")
}

// TestContainersRename: rename changes the name everywhere; names stay unique.
func TestContainersRename(t *testing.T) {
	e := needEngine(t)
	a, b, c := uniq("rena"), uniq("renb"), uniq("renc")
	e.rmOnCleanup(t, b, c)
	id := e.sleeper(t, a)
	e.sleeper(t, c)

	e.ok(t, "rename", a, b)
	mustEqual(t, "inspect by the new name", e.inspect(t, "{{.Id}}", b), id)
	mustEqual(t, ".Name after rename", e.inspect(t, "{{.Name}}", b), "/"+b)
	e.fails(t, "container", "inspect", a)
	mustEqual(t, "ps shows the new name", e.ok(t, "ps", "-f", "id="+id, "--format", "{{.Names}}"), b)
	mustEqual(t, "exec by the new name", e.ok(t, "exec", b, "echo", "ok"), "ok")

	e.fails(t, "rename", c, b)
	mustEqual(t, "a refused rename keeps the old name", e.inspect(t, "{{.Name}}", c), "/"+c)
	e.fails(t, "rename", "nosuch-"+randHex(6), uniq("x"))
}

// TestContainersTop: docker top lists the container's processes with host pids.
func TestContainersTop(t *testing.T) {
	e := needEngine(t)
	name := uniq("top")
	e.sleeper(t, name)
	out := e.ok(t, "top", name)
	ls := lines(out)
	if len(ls) < 2 || !strings.Contains(ls[0], "PID") || !strings.Contains(ls[0], "CMD") {
		t.Fatalf("top: want a PID/CMD header and a process:\n%s", out)
	}
	mustContain(t, "top lists the process", out, "sleep 3600")
	pid := e.inspect(t, "{{.State.Pid}}", name)
	if !regexp.MustCompile(`(?m)\s` + pid + `\s`).MatchString(out) {
		t.Fatalf("top does not show the container's pid %s:\n%s", pid, out)
	}
	e.ok(t, "stop", "-t", "1", name)
	e.fails(t, "top", name)
}

// TestContainersStats: docker stats --no-stream reports a running container.
func TestContainersStats(t *testing.T) {
	e := needEngine(t)
	name := uniq("stats")
	e.sleeper(t, name, "-m", "32m")
	out := e.ok(t, "stats", "--no-stream", name)
	for _, want := range []string{"CONTAINER ID", "NAME", "MEM USAGE", name} {
		mustContain(t, "stats --no-stream", out, want)
	}
	f := strings.Split(e.ok(t, "stats", "--no-stream", "--format", "{{.Name}}|{{.MemUsage}}|{{.PIDs}}", name), "|")
	if len(f) != 3 || f[0] != name || !strings.HasSuffix(f[1], "/ 32MiB") {
		t.Fatalf("stats --format: %v", f)
	}
	if n, err := strconv.Atoi(f[2]); err != nil || n < 1 {
		t.Fatalf("stats PIDs %q, want >= 1", f[2])
	}
	mustContain(t, "stats --no-stream of all running containers", e.ok(t, "stats", "--no-stream", "--format", "{{.Name}}"), name)
}

// TestContainersDiff: docker diff shows added, changed and deleted paths.
func TestContainersDiff(t *testing.T) {
	e := needEngine(t)
	name := uniq("diff")
	e.sleeper(t, name)
	e.ok(t, "exec", name, "sh", "-c", "echo new > /tmp/new.txt; rm /www/index.html; echo x >> /etc/passwd")
	out := lines(e.ok(t, "diff", name))
	for _, want := range []string{"A /tmp/new.txt", "D /www/index.html", "C /etc/passwd", "C /tmp", "C /www"} {
		if !contains(out, want) {
			t.Fatalf("diff lacks %q: %v", want, out)
		}
	}
	if contains(out, "A /bin/busybox") || contains(out, "C /bin/busybox") {
		t.Fatalf("diff shows untouched image files: %v", out)
	}
	// The mount points of every container live in the init layer, as Docker's do.
	for _, unwanted := range []string{"A /proc", "A /sys", "A /dev", "A /etc/hosts", "A /etc/resolv.conf", "A /.dockerenv"} {
		if contains(out, unwanted) {
			t.Fatalf("diff shows the runtime's mount point %q: %v", unwanted, out)
		}
	}
	e.ok(t, "exec", name, "test", "-f", "/.dockerenv")
}

// TestContainersCommit: commit makes an image with the container's changes and --change lines.
func TestContainersCommit(t *testing.T) {
	e := needEngine(t)
	name := uniq("commit")
	ref := uniq("committed") + ":1"
	e.rmiOnCleanup(t, ref)
	e.sleeper(t, name)
	e.ok(t, "exec", name, "sh", "-c", "echo kept > /tmp/committed.txt")

	id := e.ok(t, "commit", "-c", "ENV COMMITTED=1", "-m", "e2e commit", name, ref)
	if !strings.HasPrefix(id, "sha256:") {
		t.Fatalf("commit printed %q, want sha256:<id>", id)
	}
	mustEqual(t, "commit's image id", e.ok(t, "image", "inspect", "-f", "{{.Id}}", ref), id)
	mustEqual(t, "the committed image keeps the container's CMD", e.ok(t, "image", "inspect", "-f", "{{json .Config.Cmd}}", ref), `["sleep","3600"]`)
	mustEqual(t, "commit -m", e.ok(t, "image", "inspect", "-f", "{{.Comment}}", ref), "e2e commit")
	out := e.ok(t, "run", "--rm", ref, "sh", "-c", "cat /tmp/committed.txt; echo $COMMITTED; cat /www/index.html")
	mustEqual(t, "a container of the committed image", out, "kept\n1\nhello from busybox")
	if n := len(e.docker(t, "history", "-q", ref).Lines()); n < 2 {
		t.Fatalf("history of the committed image has %d layers, want >= 2", n)
	}
	mustEqual(t, "the container still runs after commit", e.state(t, name), "running")
}

// readTar returns a tar's regular files (name without "./" -> content) and all entry names.
func readTar(t *testing.T, data []byte) (map[string]string, []string) {
	t.Helper()
	files := map[string]string{}
	var names []string
	tr := tar.NewReader(bytes.NewReader(data))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return files, names
		}
		if err != nil {
			t.Fatalf("not a tar: %v (after %d entries)", err, len(names))
		}
		n := strings.TrimSuffix(strings.TrimPrefix(strings.TrimPrefix(h.Name, "./"), "/"), "/")
		names = append(names, n)
		if h.Typeflag == tar.TypeReg {
			b, _ := io.ReadAll(tr)
			files[n] = string(b)
		}
	}
}

// TestContainersExport: export writes the container's filesystem as a tar, which imports again.
func TestContainersExport(t *testing.T) {
	e := needEngine(t)
	name := uniq("export")
	e.sleeper(t, name)
	e.ok(t, "exec", name, "sh", "-c", "echo exported > /tmp/exported.txt")
	file := filepath.Join(t.TempDir(), "fs.tar")
	e.ok(t, "export", "-o", file, name)
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	files, names := readTar(t, data)
	if files["tmp/exported.txt"] != "exported\n" || !contains(names, "bin/busybox") || !contains(names, "bin/sh") {
		t.Fatalf("export lacks the container's files (have %d entries; tmp/exported.txt=%q)", len(names), files["tmp/exported.txt"])
	}
	r := e.docker(t, "export", name)
	if r.Code != 0 {
		t.Fatalf("export to stdout: %s", r)
	}
	if files, _ := readTar(t, []byte(r.Stdout)); files["tmp/exported.txt"] != "exported\n" {
		t.Fatalf("export to stdout lacks tmp/exported.txt")
	}
	ref := uniq("reimported") + ":1"
	e.rmiOnCleanup(t, ref)
	e.ok(t, "import", file, ref)
	mustEqual(t, "a container of the re-imported export", e.ok(t, "run", "--rm", ref, "cat", "/tmp/exported.txt"), "exported")
}

// TestContainersCp: docker cp of files and directories both ways, running and stopped, and to stdout.
func TestContainersCp(t *testing.T) {
	e := needEngine(t)
	name := uniq("cp")
	e.sleeper(t, name)
	host := t.TempDir()
	in := filepath.Join(host, "in.txt")
	if err := os.WriteFile(in, []byte("copied in\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	e.ok(t, "cp", in, name+":/tmp/in.txt")
	mustEqual(t, "cp host -> container", e.ok(t, "exec", name, "cat", "/tmp/in.txt"), "copied in")

	out := filepath.Join(host, "passwd.out")
	e.ok(t, "cp", name+":/etc/passwd", out)
	if b, err := os.ReadFile(out); err != nil || !strings.HasPrefix(string(b), "root:x:0:0") {
		t.Fatalf("cp container -> host: %q %v", b, err)
	}

	// Directories.
	dir := filepath.Join(host, "tree")
	if err := os.MkdirAll(filepath.Join(dir, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "sub", "deep.txt"), []byte("deep\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	e.ok(t, "cp", dir, name+":/tmp/")
	mustEqual(t, "cp of a directory host -> container", e.ok(t, "exec", name, "cat", "/tmp/tree/sub/deep.txt"), "deep")
	e.ok(t, "cp", name+":/www", filepath.Join(host, "wwwcopy"))
	if b, err := os.ReadFile(filepath.Join(host, "wwwcopy", "index.html")); err != nil || string(b) != "hello from busybox\n" {
		t.Fatalf("cp of a directory container -> host: %q %v", b, err)
	}

	// To stdout as a tar.
	r := e.docker(t, "cp", name+":/etc/passwd", "-")
	if r.Code != 0 {
		t.Fatalf("cp to stdout: %s", r)
	}
	if files, _ := readTar(t, []byte(r.Stdout)); !strings.HasPrefix(files["passwd"], "root:x:0:0") {
		t.Fatalf("cp CONTAINER:/etc/passwd - does not give a tar with passwd (%v)", files)
	}

	// A stopped container.
	e.ok(t, "stop", "-t", "1", name)
	e.ok(t, "cp", in, name+":/root/late.txt")
	e.ok(t, "cp", name+":/tmp/in.txt", filepath.Join(host, "from-stopped.txt"))
	if b, err := os.ReadFile(filepath.Join(host, "from-stopped.txt")); err != nil || string(b) != "copied in\n" {
		t.Fatalf("cp from a stopped container: %q %v", b, err)
	}
	e.ok(t, "start", name)
	mustEqual(t, "cp into a stopped container", e.ok(t, "exec", name, "cat", "/root/late.txt"), "copied in")

	e.fails(t, "cp", name+":/no/such/file", filepath.Join(host, "nothing"))
	if _, err := os.Stat(filepath.Join(host, "nothing")); err == nil {
		t.Fatalf("a failed cp left a file behind")
	}
}

// TestContainersPrune: container prune removes stopped containers and keeps running ones.
func TestContainersPrune(t *testing.T) {
	e := needEngine(t)
	label := "e2e.prune=" + randHex(8)
	a, b := uniq("prna"), uniq("prnb")
	e.rmOnCleanup(t, a, b)
	e.ok(t, "run", "--name", a, "-l", label, bbImage, "true")
	idB := e.ok(t, "create", "--name", b, "-l", label, bbImage, "true")
	keep := uniq("prnkeep")
	e.sleeper(t, keep, "-l", label)

	out := e.ok(t, "container", "prune", "-f")
	mustContain(t, "container prune lists what it deleted", out, idB)
	mustContain(t, "container prune reports space", out, "Total reclaimed space")
	mustEqual(t, "only the running container is left", e.ok(t, "ps", "-a", "-f", "label="+label, "--format", "{{.Names}}"), keep)
}
