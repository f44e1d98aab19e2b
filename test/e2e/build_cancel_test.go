package e2e

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestBuildClientGoneMidRun: the user presses Ctrl-C (here: the client is killed) while a RUN
// step runs. The step's container is killed and removed, nothing is tagged, and the build leaves
// no mount or scratch directory behind.
func TestBuildClientGoneMidRun(t *testing.T) {
	e := needEngine(t)
	ctx := t.TempDir()
	os.WriteFile(filepath.Join(ctx, "Dockerfile"), []byte("FROM "+bbImage+"\nRUN echo started; sleep 300\n"), 0o644)
	tag := uniq("cancel") + ":1"
	e.rmiOnCleanup(t, tag)

	cmd := exec.Command(dockerBin, "build", "-t", tag, ctx)
	cmd.Env = append(e.env(), "DOCKER_BUILDKIT=0")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	running := regexp.MustCompile(`Running in ([0-9a-f]{12})`)
	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	var ctr string
	deadline := time.After(30 * time.Second)
wait:
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatal("the build ended before its RUN step started")
			}
			if m := running.FindStringSubmatch(l); m != nil {
				ctr = m[1]
			}
			if ctr != "" && l == "started" {
				break wait
			}
		case <-deadline:
			t.Fatal("no RUN step started within 30s")
		}
	}
	mustContain(t, "the RUN container while it runs", e.ok(t, "ps", "-q"), ctr)
	cmd.Process.Kill()
	cmd.Wait()

	eventually(t, 20*time.Second, "the RUN container is removed", func() (bool, string) {
		all := e.ok(t, "ps", "-aq")
		return !strings.Contains(all, ctr), all
	})
	e.fails(t, "image", "inspect", tag)
	eventually(t, 10*time.Second, "no build mount or scratch context left", func() (bool, string) {
		var left []string
		for _, m := range mountsUnder(e.dataDir) {
			if strings.Contains(m, "/overlay/active/build-") {
				left = append(left, m)
			}
		}
		ents, _ := os.ReadDir(filepath.Join(e.dataDir, "build", "tmp"))
		for _, d := range ents {
			left = append(left, d.Name())
		}
		return len(left) == 0, strings.Join(left, " ")
	})
}
