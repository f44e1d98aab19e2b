package registry

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
)

// helperEnv makes the test binary a registry process serving the directory it names.
const helperEnv = "BERTH_REGISTRY_TEST_SERVE"

// TestHelperRegistryProcess is not a test: it is the registry process of
// TestSIGKILLMidUpload, run as a child of the test binary.
func TestHelperRegistryProcess(t *testing.T) {
	dir := os.Getenv(helperEnv)
	if dir == "" {
		t.Skip("helper process only")
	}
	srv, err := New(Config{DataDir: dir})
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	fmt.Println("addr", ln.Addr())
	http.Serve(ln, srv)
}

// startChild runs a registry process on dir and returns its process and base URL.
func startChild(t *testing.T, dir string) (*exec.Cmd, string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperRegistryProcess$")
	cmd.Env = append(os.Environ(), helperEnv+"="+dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	line, err := bufio.NewReader(out).ReadString('\n')
	if !strings.HasPrefix(line, "addr ") {
		t.Fatalf("registry child: %q, %v", line, err)
	}
	return cmd, "http://" + strings.TrimSpace(strings.TrimPrefix(line, "addr "))
}

// TestSIGKILLMidUpload: a registry process killed while a blob streams in leaves no blob
// served after it restarts, and the retried upload succeeds.
func TestSIGKILLMidUpload(t *testing.T) {
	if os.Getenv(helperEnv) != "" {
		t.Skip()
	}
	dir := t.TempDir()
	data := randomBytes(32 << 20)
	d := digest.FromBytes(data)
	child, base := startChild(t, dir)

	pr, pw := io.Pipe()
	go func() {
		pw.Write(data[:8<<20]) // then stall: the upload is in flight when the kill comes
	}()
	req, _ := http.NewRequest("POST", base+"/v2/a/blobs/uploads/?digest="+d.String(), pr)
	req.ContentLength = int64(len(data))
	done := make(chan error, 1)
	go func() {
		res, err := http.DefaultClient.Do(req)
		if err == nil {
			res.Body.Close()
			err = fmt.Errorf("the upload finished: %s", res.Status)
		}
		done <- err
	}()
	deadline := time.Now().Add(10 * time.Second)
	for partialUpload(dir) < 8<<20 {
		if time.Now().After(deadline) {
			t.Fatalf("the upload never reached the disk (%d bytes)", partialUpload(dir))
		}
		time.Sleep(5 * time.Millisecond)
	}
	child.Process.Signal(syscall.SIGKILL)
	child.Wait()
	pw.CloseWithError(io.ErrClosedPipe)
	<-done

	_, base = startChild(t, dir)
	head, err := http.Head(base + "/v2/a/blobs/" + d.String())
	if err != nil || head.StatusCode != http.StatusNotFound {
		t.Fatalf("after the kill: HEAD %v %v, want 404", head.Status, err)
	}
	if n := countFiles(t, filepath.Join(dir, "blobs")); n != 0 {
		t.Errorf("%d blobs stored by a killed upload", n)
	}
	res, err := http.Post(base+"/v2/a/blobs/uploads/?digest="+d.String(), "application/octet-stream", bytes.NewReader(data))
	if err != nil || res.StatusCode != http.StatusCreated {
		t.Fatalf("retried upload: %v %v", res.Status, err)
	}
	got, err := http.Get(base + "/v2/a/blobs/" + d.String())
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(got.Body)
	got.Body.Close()
	if !bytes.Equal(body, data) {
		t.Error("the retried upload serves other bytes")
	}
}

// partialUpload is the size of the largest upload in progress under dir.
func partialUpload(dir string) int64 {
	var biggest int64
	files, _ := filepath.Glob(filepath.Join(dir, "uploads", "*", "data"))
	for _, f := range files {
		if fi, err := os.Stat(f); err == nil && fi.Size() > biggest {
			biggest = fi.Size()
		}
	}
	return biggest
}
