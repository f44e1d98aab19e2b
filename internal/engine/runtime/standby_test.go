package runtime

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// fakeRuntime writes a stand-in for berth-runtime that speaks the standby protocol, and
// puts a real berth-shim beside it (built from this module). The stand-in notes its
// priority, reads the request on fd 4, keeps it in $dir/request, and hands the shim
// (fd 3) a failure that names it; the shim passes that on as the create's reply.
func fakeRuntime(t *testing.T, dir string) string {
	if testing.Short() {
		t.Skip("builds berth-shim")
	}
	path := filepath.Join(dir, "berth-runtime")
	script := `#!/bin/sh
[ "$1" = standby ] || exit 2
cut -d' ' -f19 /proc/$$/stat > ` + dir + `/waitnice
IFS= read -r req <&4 || exit 0
cut -d' ' -f19 /proc/$$/stat > ` + dir + `/runnice
printf '%s\n' "$req" > ` + dir + `/request
printf '{"error":"fake create %s"}' "$(echo "$req" | sed 's/.*--id","\([a-z]*\)".*/\1/')" >&3
`
	if err := os.WriteFile(path, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	build := exec.Command("go", "build", "-o", filepath.Join(dir, "berth-shim"), "github.com/berth-project/berth/cmd/berth-shim")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building berth-shim: %v\n%s", err, out)
	}
	return path
}

// fillStandby starts r's standby pair and returns it.
func fillStandby(t *testing.T, r *Runtime) *standbyProc {
	t.Helper()
	r.standby.fill(r.Path, r.Root)
	r.standby.mu.Lock()
	p := r.standby.p
	r.standby.mu.Unlock()
	if p == nil {
		t.Fatal("no standby started")
	}
	return p
}

// waitForStandby waits until the stand-in runtime of a standby pair is up: it notes its
// priority first thing.
func waitForStandby(t *testing.T, dir string) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); ; {
		if data, _ := os.ReadFile(filepath.Join(dir, "waitnice")); strings.HasSuffix(string(data), "\n") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the standby did not start within 5 s")
		}
		time.Sleep(5 * time.Millisecond) // polling for its file
	}
}

func readReply(t *testing.T, f *os.File) Reply {
	defer f.Close()
	var rep Reply
	if err := json.NewDecoder(f).Decode(&rep); err != nil {
		t.Fatalf("reply: %v", err) // see shim.log
	}
	return rep
}

func TestLaunchHandsTheCreateToTheWaitingStandby(t *testing.T) {
	dir := t.TempDir()
	r := &Runtime{Path: fakeRuntime(t, dir)}
	defer r.Close()

	// No standby yet: the first start starts a pair at once.
	bundle := t.TempDir()
	ready, req, err := r.launch([]string{"--id", "one"}, bundle)
	if err != nil {
		t.Fatal(err)
	}
	req.Close()
	defer func() {
		if t.Failed() {
			log, _ := os.ReadFile(filepath.Join(bundle, "shim.log"))
			t.Logf("shim.log: %s", log)
		}
	}()
	if rep := readReply(t, ready); rep.Error != "fake create one" {
		t.Fatalf("reply %+v", rep)
	}

	for _, name := range []string{"waitnice", "runnice", "request"} {
		os.Remove(filepath.Join(dir, name)) // the first pair's
	}
	// No standby starts while a create is under way; the next one starts as it ends.
	r.standby.fill(r.Path, r.Root)
	r.standby.mu.Lock()
	during := r.standby.p
	r.standby.mu.Unlock()
	if during != nil {
		t.Fatal("a standby started during a create")
	}
	r.standby.done(r.Path, r.Root)
	// Once it is waiting (it has noted its priority), hand it the next start.
	waitForStandby(t, dir)
	ready, req, err = r.launch([]string{"--id", "two"}, bundle)
	if err != nil {
		t.Fatal(err)
	}
	req.Close()
	if rep := readReply(t, ready); rep.Error != "fake create two" {
		t.Fatalf("reply %+v", rep)
	}
	data, err := os.ReadFile(filepath.Join(dir, "request"))
	if err != nil {
		t.Fatalf("the standby got no request: %v", err)
	}
	var got StandbyRequest
	if err := json.Unmarshal(data, &got); err != nil {
		t.Fatalf("request %q: %v", data, err)
	}
	if strings.Join(got.Args, " ") != "--id two" || got.Dir != bundle || got.Log != filepath.Join(bundle, "shim.log") {
		t.Fatalf("request %+v", got)
	}
	// It waited at idle priority and carried out the create at the normal one.
	if wait, _ := os.ReadFile(filepath.Join(dir, "waitnice")); strings.TrimSpace(string(wait)) != "19" {
		t.Errorf("the standby waited at nice %q, want 19", wait)
	}
	if run, _ := os.ReadFile(filepath.Join(dir, "runnice")); strings.TrimSpace(string(run)) != "0" {
		t.Errorf("the standby ran the create at nice %q, want 0", run)
	}
}

func TestAStandbyThatIsLetGoExits(t *testing.T) {
	dir := t.TempDir()
	r := &Runtime{Path: fakeRuntime(t, dir)}
	p := fillStandby(t, r)
	pid := p.cmd.Process.Pid
	r.Close()
	deadline := time.Now().Add(5 * time.Second)
	for {
		// The engine's cmd.Wait reaps it; until then it shows as a zombie.
		stat, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
		if err != nil || strings.Contains(string(stat), ") Z ") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the standby did not exit after Close")
		}
		time.Sleep(5 * time.Millisecond) // polling the process table
	}
	if _, err := os.Stat(filepath.Join(dir, "request")); err == nil {
		t.Fatal("a standby that was let go carried out a request")
	}
}

// A waiting pair that died (killed, out of memory) does not fail the start that takes
// it: a pair started then does the create.
func TestLaunchGetsPastADeadStandby(t *testing.T) {
	dir := t.TempDir()
	r := &Runtime{Path: fakeRuntime(t, dir)}
	defer r.Close()
	p := fillStandby(t, r)
	// Once its runtime is up (it notes its priority first), the whole pair is killed.
	waitForStandby(t, dir)
	shim := p.cmd.Process.Pid
	pids := []int{shim}
	kids, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", shim))
	for _, k := range kids {
		data, _ := os.ReadFile(k)
		for _, f := range strings.Fields(string(data)) {
			if pid, err := strconv.Atoi(f); err == nil {
				pids = append(pids, pid)
			}
		}
	}
	if len(pids) < 2 {
		t.Fatal("the standby shim has no runtime child")
	}
	if err := syscall.Kill(-shim, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	// Gone once each is gone or a zombie (a zombie holds no descriptors any more).
	gone := func(pid int) bool {
		stat, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
		return err != nil || strings.Contains(string(stat), ") Z ")
	}
	for deadline := time.Now().Add(5 * time.Second); ; {
		if gone(pids[0]) && gone(pids[1]) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the killed pair did not go within 5 s")
		}
		time.Sleep(5 * time.Millisecond) // polling the process table
	}
	ready, req, err := r.launch([]string{"--id", "three"}, t.TempDir())
	if err != nil {
		t.Fatalf("launch after the standby died: %v", err)
	}
	req.Close()
	if rep := readReply(t, ready); rep.Error != "fake create three" {
		t.Fatalf("reply %+v", rep)
	}
}
