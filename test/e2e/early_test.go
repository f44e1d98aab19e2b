package e2e

import (
	"os"
	"path/filepath"
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
