package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/berth-project/berth/internal/program"
)

// TestReliabilityEngineCrash starts containers on an engine of its own, kills the engine with
// SIGKILL and starts it again on the same directories: the containers kept running, docker ps
// shows them, their logs are intact and still growing, and exec/stop work. Then the same after
// a clean SIGTERM stop.
func TestReliabilityEngineCrash(t *testing.T) {
	e := privateEngine(t, "r")
	if _, err := e.importBusybox(bbImage, nil, nil); err != nil {
		t.Fatal(err)
	}

	const n = 18                // with the web server and the ticker: 20 containers
	ids := map[string]string{}  // name -> id
	pids := map[string]string{} // name -> host pid
	var names []string
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("rel%d-%s", i, randHex(4))
		names = append(names, name)
		ids[name] = e.ok(t, "run", "-d", "--name", name, bbImage, "sh", "-c", fmt.Sprintf("echo hello-%d; exec sleep 3600", i))
	}
	// A published port goes on answering while the engine is down (the DNAT rules stay; the
	// loopback shortcut goes with the engine's process) and after it is back.
	web, port := "relweb-"+randHex(4), freePort(t)
	ids[web] = e.ok(t, "run", "-d", "--name", web, "-p", fmt.Sprintf("%d:80", port), bbImage, "httpd", "-f", "-p", "80", "-h", "/www")
	published := fmt.Sprintf("127.0.0.1:%d", port)
	eventuallyServes(t, "the published port answers", published)
	ticker := "reltick-" + randHex(4)
	ids[ticker] = e.ok(t, "run", "-d", "--name", ticker, bbImage, "sh", "-c", "i=0; while :; do i=$((i+1)); echo tick $i; sleep 0.2; done")
	for i, name := range names {
		want := fmt.Sprintf("hello-%d", i)
		eventually(t, 20*time.Second, name+" logged "+want, func() (bool, string) {
			out := e.docker(t, "logs", name).Out()
			return out == want, out
		})
	}
	for name := range ids {
		e.waitState(t, name, "running", 10*time.Second)
		pids[name] = e.inspect(t, "{{.State.Pid}}", name)
	}

	ticks := func() int {
		return strings.Count(e.docker(t, "logs", ticker).Stdout, "tick ")
	}
	check := func(phase string) {
		t.Helper()
		want := make([]string, 0, len(ids))
		for _, id := range ids {
			want = append(want, id)
		}
		sort.Strings(want)
		got := e.docker(t, "ps", "-q", "--no-trunc").Lines()
		sort.Strings(got)
		if strings.Join(got, " ") != strings.Join(want, " ") {
			t.Fatalf("%s: docker ps lists %d containers %v, want the %d started before", phase, len(got), got, len(want))
		}
		for name, pid := range pids {
			mustEqual(t, phase+": "+name+" is running", e.state(t, name), "running")
			mustEqual(t, phase+": "+name+" keeps its process", e.inspect(t, "{{.State.Pid}}", name), pid)
		}
		for i, name := range names {
			mustEqual(t, phase+": logs of "+name+" are intact", e.ok(t, "logs", name), fmt.Sprintf("hello-%d", i))
		}
		before := ticks()
		eventually(t, 20*time.Second, phase+": the ticker's log keeps growing", func() (bool, string) {
			now := ticks()
			return now > before+2, fmt.Sprintf("%d ticks, %d before", now, before)
		})
		mustEqual(t, phase+": exec works", e.ok(t, "exec", names[0], "echo", "ok"), "ok")
	}

	// Crash.
	before := ticks()
	if err := e.crash(); err != nil {
		t.Fatal(err)
	}
	for name, pid := range pids {
		if _, err := os.Stat("/proc/" + pid); err != nil {
			t.Fatalf("after the engine was killed, %s's process %s is gone", name, pid)
		}
	}
	eventuallyServes(t, "the published port answers while the engine is down", published)
	if err := e.start(); err != nil {
		t.Fatalf("restart after SIGKILL: %v", err)
	}
	check("after SIGKILL")
	eventuallyServes(t, "the published port answers after the restart", published)
	if after := ticks(); after <= before {
		t.Fatalf("the ticker's log did not grow across the crash: %d -> %d", before, after)
	}
	logs := e.ok(t, "logs", ticker)
	if !strings.HasPrefix(logs, "tick 1\ntick 2\n") {
		t.Fatalf("the ticker's log lost its beginning: %q", clip(logs))
	}

	// A clean stop keeps containers running too.
	if err := e.stop(); err != nil {
		t.Fatal(err)
	}
	if err := e.start(); err != nil {
		t.Fatalf("restart after SIGTERM: %v", err)
	}
	check("after SIGTERM")

	// docker stop and a new container work on the restarted engine.
	e.ok(t, "stop", "-t", "1", names[1])
	mustEqual(t, "stop after the restarts", e.state(t, names[1]), "exited")
	if _, err := os.Stat("/proc/" + pids[names[1]]); err == nil {
		if b, _ := os.ReadFile("/proc/" + pids[names[1]] + "/cmdline"); strings.Contains(string(b), "sleep") {
			t.Fatalf("docker stop left %s's process %s running", names[1], pids[names[1]])
		}
	}
	mustEqual(t, "a new container on the restarted engine", e.ok(t, "run", "--rm", bbImage, "echo", "new"), "new")
	e.ok(t, "rm", "-f", names[0])
	e.fails(t, "container", "inspect", names[0])

	// docker stop works on every one of them, and once every container is removed nothing
	// of theirs is left: no mount, no cgroup, no process.
	var rest []string
	for name := range ids {
		if name != names[0] {
			rest = append(rest, name)
		}
	}
	e.ok(t, append([]string{"stop", "-t", "1"}, rest...)...)
	for _, name := range rest {
		mustEqual(t, "docker stop "+name, e.state(t, name), "exited")
	}
	e.ok(t, append([]string{"rm"}, rest...)...)
	mustEqual(t, "no container left", e.ok(t, "ps", "-aq"), "")
	eventually(t, 10*time.Second, "nothing of the removed containers is left", func() (bool, string) {
		left := e.leftovers(ids)
		return len(left) == 0, strings.Join(left, "\n")
	})
	// With nothing running, a stopped engine leaves no mount either (its run dir's tmpfs goes).
	if err := e.stop(); err != nil {
		t.Fatal(err)
	}
	if mps := mountsUnder(e.work); len(mps) > 0 {
		t.Fatalf("the stopped engine left mounts: %v", mps)
	}
	eventually(t, 10*time.Second, "no process of the stopped engine left", func() (bool, string) {
		left := processesMentioning(e.work)
		return len(left) == 0, fmt.Sprint(left)
	})
}

// leftovers lists what is left on the host of the given containers (name -> id) of e: a
// mount under its data directory, a cgroup named after one of them, a process other than
// the engine that names one of its directories.
func (e *engine) leftovers(ids map[string]string) []string {
	left := mountsUnder(e.dataDir)
	if !peerMode() {
		for _, id := range ids {
			for _, pattern := range []string{"/sys/fs/cgroup/*/berth/" + id, "/sys/fs/cgroup/berth/" + id} {
				found, _ := filepath.Glob(pattern)
				left = append(left, found...)
			}
		}
	}
	for pid, cmdline := range processesMentioning(e.work) {
		comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
		// The engine itself, and the shim and runtime it keeps waiting for the next
		// start (they go with it: checked once it has stopped).
		if pid != e.pid() && strings.TrimSpace(string(comm)) != program.StandbyName {
			left = append(left, fmt.Sprintf("process %d: %s", pid, cmdline))
		}
	}
	return left
}
