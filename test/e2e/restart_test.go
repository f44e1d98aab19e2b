package e2e

import (
	"strconv"
	"strings"
	"testing"
	"time"
)

func (e *engine) restartCount(t *testing.T, name string) int {
	t.Helper()
	n, err := strconv.Atoi(e.inspect(t, "{{.RestartCount}}", name))
	if err != nil {
		t.Fatalf("RestartCount of %s: %v", name, err)
	}
	return n
}

// TestRestartPolicies: always restarts (RestartCount grows, logs of every run kept) until
// stopped; no stays Exited; on-failure:N restarts N times on failure and never on success.
func TestRestartPolicies(t *testing.T) {
	e := needEngine(t)

	t.Run("always", func(t *testing.T) {
		t.Parallel()
		name := uniq("always")
		e.runDetached(t, name, "--restart", "always", bbImage, "sh", "-c", "echo started; sleep 1; exit 3")
		mustEqual(t, "restart policy", e.inspect(t, "{{.HostConfig.RestartPolicy.Name}}", name), "always")
		eventually(t, 30*time.Second, "RestartCount reaches 2", func() (bool, string) {
			n := e.restartCount(t, name)
			return n >= 2, strconv.Itoa(n)
		})
		eventually(t, 10*time.Second, "the logs keep every run's output", func() (bool, string) {
			n := strings.Count(e.ok(t, "logs", name), "started")
			return n >= 3, strconv.Itoa(n) + " runs logged"
		})
		mustContain(t, "ps lists it among running containers", e.ok(t, "ps", "-f", "name="+name, "--format", "{{.Names}}"), name)

		// docker stop ends the restarts.
		e.ok(t, "stop", "-t", "1", name)
		e.waitState(t, name, "exited", 10*time.Second)
		n := e.restartCount(t, name)
		consistently(t, 3*time.Second, "a stopped always-container stays stopped", func() (bool, string) {
			s, c := e.state(t, name), e.restartCount(t, name)
			return s == "exited" && c == n, s + " restarts=" + strconv.Itoa(c)
		})
	})

	t.Run("no", func(t *testing.T) {
		t.Parallel()
		name := uniq("never")
		e.runDetached(t, name, "--restart", "no", bbImage, "sh", "-c", "sleep 1; exit 3")
		e.waitState(t, name, "exited", 15*time.Second)
		mustContain(t, "ps -a shows Exited (3)", e.ok(t, "ps", "-a", "-f", "name="+name, "--format", "{{.Status}}"), "Exited (3)")
		consistently(t, 3*time.Second, "restart no: stays Exited", func() (bool, string) {
			s, c := e.state(t, name), e.restartCount(t, name)
			return s == "exited" && c == 0, s + " restarts=" + strconv.Itoa(c)
		})
	})

	t.Run("on-failure:2", func(t *testing.T) {
		t.Parallel()
		name := uniq("onfail")
		e.runDetached(t, name, "--restart", "on-failure:2", bbImage, "sh", "-c", "echo run; exit 3")
		mustEqual(t, "restart policy", e.inspect(t, "{{.HostConfig.RestartPolicy.Name}}:{{.HostConfig.RestartPolicy.MaximumRetryCount}}", name), "on-failure:2")
		eventually(t, 30*time.Second, "on-failure:2 gives up after 2 restarts", func() (bool, string) {
			s, c := e.state(t, name), e.restartCount(t, name)
			return s == "exited" && c == 2, s + " restarts=" + strconv.Itoa(c)
		})
		consistently(t, 3*time.Second, "on-failure:2 stays down after 2 restarts", func() (bool, string) {
			s, c := e.state(t, name), e.restartCount(t, name)
			return s == "exited" && c == 2, s + " restarts=" + strconv.Itoa(c)
		})
		mustEqual(t, "exit code", e.inspect(t, "{{.State.ExitCode}}", name), "3")
		if n := strings.Count(e.ok(t, "logs", name), "run"); n != 3 {
			t.Fatalf("on-failure:2 ran %d times, want 3", n)
		}
	})

	t.Run("on-failure after success", func(t *testing.T) {
		t.Parallel()
		name := uniq("onfailok")
		e.runDetached(t, name, "--restart", "on-failure", bbImage, "sh", "-c", "sleep 1; exit 0")
		e.waitState(t, name, "exited", 15*time.Second)
		consistently(t, 3*time.Second, "on-failure does not restart after exit 0", func() (bool, string) {
			s, c := e.state(t, name), e.restartCount(t, name)
			return s == "exited" && c == 0, s + " restarts=" + strconv.Itoa(c)
		})
	})
}

// TestUpdateRestartPolicy: docker update --restart changes the policy of an existing
// container, and the new policy is the one applied at its next exit.
func TestUpdateRestartPolicy(t *testing.T) {
	e := needEngine(t)
	name := uniq("upd")
	e.runDetached(t, name, bbImage, "sh", "-c", "sleep 1; exit 2")
	e.ok(t, "update", "--restart", "on-failure:2", name)
	mustEqual(t, "the new policy is recorded", e.inspect(t, "{{.HostConfig.RestartPolicy.Name}}:{{.HostConfig.RestartPolicy.MaximumRetryCount}}", name), "on-failure:2")
	eventually(t, 30*time.Second, "it is restarted twice and then stays exited", func() (bool, string) {
		out := e.inspect(t, "{{.RestartCount}} {{.State.Status}}", name)
		return out == "2 exited", out
	})
	mustContain(t, "resource updates are refused clearly", e.fails(t, "update", "-m", "100m", name).Stderr, "not supported")
}
