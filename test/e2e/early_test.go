package e2e

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// A container that needs no network set up (--network none or host) is made by the
// runtime at its create and held until its start (the engine's early start). These
// tests check what a user sees of that: nothing runs before the start, a start comes
// whenever it comes, and removing the container or restarting the engine first leaves
// nothing behind and changes nothing.

// heldShim reports whether the engine holds an early start for container id: its shim
// serves on RUN/s/<id prefix>.
func (e *engine) heldShim(id string) bool {
	_, err := os.Stat(filepath.Join(e.runDir, "s", id[:24]))
	return err == nil
}

func TestEarlyStartRunsNothingBeforeTheStart(t *testing.T) {
	e := needEngine(t)
	out := t.TempDir()
	name := uniq("early")
	e.rmOnCleanup(t, name)
	id := e.ok(t, "create", "--network", "none", "--name", name, "-v", out+":/out", bbImage,
		"sh", "-c", "touch /out/ran; echo started-late")
	eventually(t, 10*time.Second, "the early start's shim", func() (bool, string) {
		return e.heldShim(id), "no shim socket"
	})
	// The process exists, held before its exec: it cannot have run.
	if _, err := os.Stat(filepath.Join(out, "ran")); err == nil {
		t.Fatal("the command ran before docker start")
	}
	mustEqual(t, "state before the start", e.state(t, name), "created")
	e.fails(t, "exec", name, "true")
	mustEqual(t, "docker start -a", e.ok(t, "start", "-a", name), "started-late")
	if _, err := os.Stat(filepath.Join(out, "ran")); err != nil {
		t.Fatalf("the command did not run at the start: %v", err)
	}
}

// docker run starts what it created a few milliseconds later, while the runtime is
// still making it: the process then starts as soon as it is made, before the engine
// has finished its start. Its attached client must still get all of its output, in
// order, and its exit code.
func TestEarlyStartAtOnceKeepsTheOutput(t *testing.T) {
	e := needEngine(t)
	for i := 0; i < 3; i++ {
		// More than the pipes hold (64 KiB each) before anything reads them.
		r := e.docker(t, "run", "--rm", "--network", "none", bbImage,
			"sh", "-c", "seq 1 30000; echo to-stderr >&2; exit 3")
		if r.Code != 3 {
			t.Fatalf("exit code %d, want 3: %s", r.Code, r)
		}
		lines := strings.Split(strings.TrimSpace(r.Stdout), "\n")
		if len(lines) != 30000 || lines[0] != "1" || lines[29999] != "30000" {
			t.Fatalf("stdout: %d lines, first %q, last %q", len(lines), lines[0], lines[len(lines)-1])
		}
		for n, l := range lines {
			if l != strconv.Itoa(n+1) {
				t.Fatalf("stdout line %d is %q", n+1, l)
			}
		}
		mustEqual(t, "stderr", strings.TrimSpace(r.Stderr), "to-stderr")
	}
}

func TestEarlyStartAbandoned(t *testing.T) {
	e := needEngine(t)

	t.Run("start after the hold", func(t *testing.T) {
		name := uniq("late")
		e.rmOnCleanup(t, name)
		id := e.ok(t, "create", "--network", "none", "--name", name, bbImage, "echo", "late-but-fine")
		eventually(t, 10*time.Second, "the early start's shim", func() (bool, string) {
			return e.heldShim(id), "no shim socket"
		})
		// No start comes: the engine lets the held process go (after 5 s).
		eventually(t, 20*time.Second, "the early start abandoned", func() (bool, string) {
			return !e.heldShim(id), "its shim still serves"
		})
		mustEqual(t, "state", e.state(t, name), "created")
		mustEqual(t, "docker start -a", e.ok(t, "start", "-a", name), "late-but-fine")
	})

	t.Run("removed before the start", func(t *testing.T) {
		name := uniq("gone")
		id := e.ok(t, "create", "--network", "host", "--name", name, bbImage, "sleep", "30")
		eventually(t, 10*time.Second, "the early start's shim", func() (bool, string) {
			return e.heldShim(id), "no shim socket"
		})
		e.ok(t, "rm", name)
		if e.heldShim(id) {
			t.Fatal("the shim still serves after docker rm")
		}
		for _, root := range []string{"/sys/fs/cgroup/pids", "/sys/fs/cgroup/unified", "/sys/fs/cgroup"} {
			matches, _ := filepath.Glob(filepath.Join(root, "*", id))
			if len(matches) > 0 {
				t.Fatalf("docker rm left the held container's cgroups: %v", matches)
			}
		}
		if left := processesMentioning(id); len(left) > 0 {
			t.Fatalf("docker rm left processes: %v", left)
		}
	})
}

// An engine killed while it holds an early start lets it go when it starts again; the
// container starts as any other.
func TestEarlyStartSurvivesAnEngineCrash(t *testing.T) {
	e := privateEngine(t, "early")
	if _, err := e.importBusybox(bbImage, nil, nil); err != nil {
		t.Fatal(err)
	}
	id := e.ok(t, "create", "--network", "none", "--name", "held", bbImage, "echo", "after-the-crash")
	eventually(t, 10*time.Second, "the early start's shim", func() (bool, string) {
		return e.heldShim(id), "no shim socket"
	})
	if err := e.crash(); err != nil {
		t.Fatal(err)
	}
	if err := e.start(); err != nil {
		t.Fatal(err)
	}
	if e.heldShim(id) {
		t.Fatal("the restarted engine kept the old engine's early start")
	}
	mustEqual(t, "state", e.state(t, "held"), "created")
	mustEqual(t, "docker start -a", e.ok(t, "start", "-a", "held"), "after-the-crash")
	e.ok(t, "rm", "held")
	if left := processesMentioning(id); len(left) > 0 {
		t.Fatalf("processes left: %v", left)
	}
}
