package kubelet

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// debugTarget starts pod "target" (container "main" running cmd) in a namespace of its
// own and returns the namespace, once the pod runs.
func debugTarget(t *testing.T, cmd string) string {
	t.Helper()
	need(t)
	if _, err := os.Stat(kubectlBin); err != nil {
		t.Skip("kubectl is not installed at " + kubectlBin)
	}
	ns := namespace(t)
	create(t, newPod(ns, "target", busybox("main", cmd)))
	waitPod(t, ns, "target", 30*time.Second, "running", running)
	return ns
}

// debugArgs is `kubectl debug -it` of a shell named debugger in target's process namespace.
func debugArgs(ns string) []string {
	return []string{"-n", ns, "debug", "-it", "target", "--image=" + busyboxImage,
		"--image-pull-policy=IfNotPresent", "--target=main", "-c", "debugger", "--", "sh"}
}

// TestKubectlDebugGivesAnInteractiveShell is `kubectl debug -it POD --image=IMAGE
// --target=CONTAINER -- sh` typed at a terminal: kubectl adds the ephemeral container, waits
// for it to run and attaches with stdin and a TTY of the user's terminal's size; the user
// types a command, sees its answer, types exit, and the debugger stays terminated (ephemeral
// containers are not restarted).
func TestKubectlDebugGivesAnInteractiveShell(t *testing.T) {
	ns := debugTarget(t, "exec sleep 3603")
	term := startAtTerminal(t, debugArgs(ns)...)
	term.waitFor(t, "If you don't see a command prompt")
	// The terminal's size reaches the container only through the attach's resize stream,
	// beside stdin and in no fixed order with it (kubectl sends one row and column more first,
	// so that a shell attached to again redraws): ask until the last size is in.
	term.askUntil(t, "stty size", "\n24 80\r\n")
	term.typeLine("echo $((6*7)); exit")
	term.waitFor(t, "\n42\r\n")
	term.waitExit(t)
	waitJSONPath(t, ns, "target", `{.status.ephemeralContainerStatuses[?(@.name=="debugger")].state.terminated.reason}`, "Completed")
}

// TestKubectlAttachReturnsToADetachedDebugger: a user whose kubectl debug -it went away (a
// closed terminal) gets back into the still-running debugger with kubectl attach -it -c.
func TestKubectlAttachReturnsToADetachedDebugger(t *testing.T) {
	ns := debugTarget(t, "exec sleep 3604")
	first := startAtTerminal(t, debugArgs(ns)...)
	first.waitFor(t, "If you don't see a command prompt")
	first.typeLine("echo first")
	first.waitFor(t, "\nfirst\r\n")
	first.hangUp(t)
	waitJSONPath(t, ns, "target", `{.status.ephemeralContainerStatuses[?(@.name=="debugger")].state.running.startedAt}`, "")

	again := startAtTerminal(t, "-n", ns, "attach", "-it", "target", "-c", "debugger")
	again.waitFor(t, "If you don't see a command prompt")
	again.typeLine("echo $((6*7)); exit")
	again.waitFor(t, "\n42\r\n")
	again.waitExit(t)
	waitJSONPath(t, ns, "target", `{.status.ephemeralContainerStatuses[?(@.name=="debugger")].state.terminated.reason}`, "Completed")
}

// terminal is kubectl running on a pseudo-terminal, as at a user's shell.
type terminal struct {
	cmd    *exec.Cmd
	master *os.File
	done   chan error

	mu  sync.Mutex
	out bytes.Buffer
}

// startAtTerminal runs kubectl with a new pty as its controlling terminal, stdin, stdout and
// stderr. The test's clean-up ends it if it is still running.
func startAtTerminal(t *testing.T, args ...string) *terminal {
	t.Helper()
	master, slave, err := openPTY()
	if err != nil {
		t.Fatal(err)
	}
	defer slave.Close()
	unix.IoctlSetWinsize(int(slave.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: 24, Col: 80})
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	cmd := exec.CommandContext(ctx, kubectlBin, append([]string{"--kubeconfig", kubeconfig}, args...)...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, slave, slave
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	if err := cmd.Start(); err != nil {
		cancel()
		master.Close()
		t.Fatal(err)
	}
	term := &terminal{cmd: cmd, master: master, done: make(chan error, 1)}
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := master.Read(buf)
			term.mu.Lock()
			term.out.Write(buf[:n])
			term.mu.Unlock()
			if err != nil { // EIO once kubectl and everything else let go of the pty
				return
			}
		}
	}()
	go func() { term.done <- cmd.Wait() }()
	t.Cleanup(func() {
		cancel()
		<-term.done
		master.Close()
	})
	return term
}

// openPTY opens a new pseudo-terminal pair.
func openPTY() (master, slave *os.File, err error) {
	master, err = os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		return nil, nil, err
	}
	fd := int(master.Fd())
	if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil {
		master.Close()
		return nil, nil, fmt.Errorf("unlocking the pty: %w", err)
	}
	n, err := unix.IoctlGetInt(fd, unix.TIOCGPTN)
	if err != nil {
		master.Close()
		return nil, nil, fmt.Errorf("pty number: %w", err)
	}
	slave, err = os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		master.Close()
		return nil, nil, err
	}
	return master, slave, nil
}

func (term *terminal) output() string {
	term.mu.Lock()
	defer term.mu.Unlock()
	return term.out.String()
}

// waitFor polls the screen until it shows s.
func (term *terminal) waitFor(t *testing.T, s string) {
	t.Helper()
	for deadline := time.Now().Add(60 * time.Second); !strings.Contains(term.output(), s); {
		select {
		case err := <-term.done:
			term.done <- err
			if strings.Contains(term.output(), s) {
				return
			}
			t.Fatalf("kubectl ended (%v) without showing %q:\n%s", err, s, term.output())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("kubectl did not show %q within 60s:\n%s", s, term.output())
		}
		time.Sleep(20 * time.Millisecond) // polling the terminal's output
	}
}

// askUntil types cmd until the screen shows want after it.
func (term *terminal) askUntil(t *testing.T, cmd, want string) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); {
		from := len(term.output())
		term.typeLine(cmd)
		for next := time.Now().Add(time.Second); time.Now().Before(next); {
			if strings.Contains(term.output()[from:], want) {
				return
			}
			time.Sleep(20 * time.Millisecond) // polling the terminal's output
		}
	}
	t.Fatalf("%s did not answer %q within 30s:\n%s", cmd, want, term.output())
}

// typeLine types s and Enter.
func (term *terminal) typeLine(s string) {
	term.master.Write([]byte(s + "\r"))
}

// waitExit waits for kubectl to end by itself, successfully.
func (term *terminal) waitExit(t *testing.T) {
	t.Helper()
	select {
	case err := <-term.done:
		term.done <- err
		if err != nil {
			t.Fatalf("kubectl: %v\n%s", err, term.output())
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("kubectl did not end within 60s:\n%s", term.output())
	}
}

// hangUp ends kubectl as a closed terminal window does.
func (term *terminal) hangUp(t *testing.T) {
	t.Helper()
	term.cmd.Process.Signal(syscall.SIGHUP)
	select {
	case err := <-term.done:
		term.done <- err
	case <-time.After(30 * time.Second):
		t.Fatalf("kubectl did not end on SIGHUP:\n%s", term.output())
	}
}

// waitJSONPath polls kubectl get pod -o jsonpath=path until it prints want (any non-empty
// output when want is "").
func waitJSONPath(t *testing.T, ns, pod, path, want string) {
	t.Helper()
	var got string
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); {
		got = kubectl(t, "", "-n", ns, "get", "pod", pod, "-o", "jsonpath="+path)
		if got == want || want == "" && got != "" {
			return
		}
		time.Sleep(100 * time.Millisecond) // polling the kubelet's status reports
	}
	t.Fatalf("kubectl get pod %s -o jsonpath=%s: %q, want %q", pod, path, got, want)
}
