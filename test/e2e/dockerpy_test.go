package e2e

import (
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestDockerPy drives the engine with docker-py (the Python SDK): images.list, a foreground
// run, containers.run(detach=True), logs, exec_run, stop, wait and remove.
func TestDockerPy(t *testing.T) {
	e := needEngine(t)
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 is not installed")
	}
	if out, err := exec.Command(py, "-c", "import docker").CombinedOutput(); err != nil {
		t.Skipf("the docker Python package (docker-py) is not installed: %v %s", err, out)
	}
	name := uniq("dockerpy")
	e.rmOnCleanup(t, name)

	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, py, filepath.Join("testdata", "dockerpy_smoke.py"))
	cmd.Env = append(e.env(), "E2E_IMAGE="+bbImage, "E2E_NAME="+name, "PYTHONUNBUFFERED=1")
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "dockerpy ok") {
		t.Fatalf("docker-py smoke test failed (%v):\n%s", err, out)
	}
}
