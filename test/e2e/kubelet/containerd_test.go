package kubelet

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// The test's own names, so nothing it makes collides with other tests on this machine.
const (
	bridgeName = "tkl0"
	podSubnet  = "10.77.0.0/24"
	cniNetwork = "tkl-net"
)

// containerd is Debian's containerd 1.6 run with its own root, state, socket and CNI config.
type containerd struct {
	dir  string
	sock string
	cmd  *exec.Cmd
	done chan struct{}
}

func startContainerd(dir string) (*containerd, error) {
	if _, err := exec.LookPath("containerd"); err != nil {
		return nil, fmt.Errorf("containerd is not installed (apt-get install containerd containernetworking-plugins): %w", err)
	}
	if _, err := os.Stat("/usr/lib/cni/bridge"); err != nil {
		return nil, fmt.Errorf("CNI plugins are not installed (apt-get install containernetworking-plugins): %w", err)
	}
	c := &containerd{dir: dir, sock: filepath.Join(dir, "containerd.sock"), done: make(chan struct{})}
	cniDir := filepath.Join(dir, "cni")
	os.MkdirAll(cniDir, 0o755)
	cni := fmt.Sprintf(`{"cniVersion":"0.4.0","name":%q,"plugins":[
 {"type":"bridge","bridge":%q,"isGateway":true,"ipMasq":false,"hairpinMode":true,
  "ipam":{"type":"host-local","ranges":[[{"subnet":%q}]],"dataDir":%q}},
 {"type":"loopback"}]}`, cniNetwork, bridgeName, podSubnet, filepath.Join(dir, "ipam"))
	if err := os.WriteFile(filepath.Join(cniDir, "10-tkl.conflist"), []byte(cni), 0o644); err != nil {
		return nil, err
	}
	cfg := fmt.Sprintf(`version = 2
root = %q
state = %q
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.internal.v1.opt", "io.containerd.tracing.processor.v1.otlp"]
[grpc]
  address = %q
[ttrpc]
  address = %q
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = %q
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  # This machine refuses negative oom_score_adj values (the sandbox asks for -998).
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = %q
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
`, filepath.Join(dir, "root"), filepath.Join(dir, "state"), c.sock, c.sock+".ttrpc", pauseImage, cniDir)
	cfgPath := filepath.Join(dir, "containerd.toml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		return nil, err
	}
	logf, err := os.Create(filepath.Join(dir, "containerd.log"))
	if err != nil {
		return nil, err
	}
	c.cmd = exec.Command("containerd", "--config", cfgPath)
	c.cmd.Stdout, c.cmd.Stderr = logf, logf
	c.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := c.cmd.Start(); err != nil {
		return nil, err
	}
	go func() { c.cmd.Wait(); logf.Close(); close(c.done) }()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if out, err := c.ctr("version"); err == nil && strings.Contains(out, "Server") {
			return c, nil
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(dir, "containerd.log"))
			c.stop()
			return nil, fmt.Errorf("containerd did not answer within 30s:\n%s", log)
		}
		time.Sleep(50 * time.Millisecond) // polling for the socket to answer
	}
}

func (c *containerd) ctr(args ...string) (string, error) {
	out, err := exec.Command("ctr", append([]string{"--address", c.sock, "--namespace", "k8s.io"}, args...)...).CombinedOutput()
	return string(out), err
}

func (c *containerd) runtimeClient() (runtimeapi.RuntimeServiceClient, *grpc.ClientConn, error) {
	conn, err := grpc.NewClient("unix://"+c.sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, nil, err
	}
	return runtimeapi.NewRuntimeServiceClient(conn), conn, nil
}

// stop removes every sandbox (which tears down its network namespace and CNI address), stops
// containerd, kills the shims it left, unmounts what is left under its directories and deletes
// the test bridge.
func (c *containerd) stop() {
	var netns []string
	if rt, conn, err := c.runtimeClient(); err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		if sbs, err := rt.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{}); err == nil {
			for _, sb := range sbs.Items {
				netns = append(netns, sandboxNetNS(ctx, rt, sb.Id)...)
				rt.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: sb.Id})
				rt.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: sb.Id})
			}
		}
		cancel()
		conn.Close()
	}
	// Whatever CRI could not remove: kill the tasks, so no container process outlives the test.
	if out, err := c.ctr("tasks", "ls", "-q"); err == nil {
		for _, id := range strings.Fields(out) {
			c.ctr("tasks", "kill", "-a", "-s", "SIGKILL", id)
			c.ctr("tasks", "rm", "-f", id)
		}
	}
	if c.cmd != nil && c.cmd.Process != nil {
		c.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-c.done:
		case <-time.After(10 * time.Second):
			c.cmd.Process.Kill()
			<-c.done
		}
	}
	// Shims outlive containerd by design; ours name our socket on their command line.
	procs, _ := os.ReadDir("/proc")
	for _, p := range procs {
		pid, err := strconv.Atoi(p.Name())
		if err != nil {
			continue
		}
		cmdline, _ := os.ReadFile(filepath.Join("/proc", p.Name(), "cmdline"))
		if strings.Contains(string(cmdline), "containerd-shim") && strings.Contains(string(cmdline), c.sock) {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	for _, m := range mountsUnder(c.dir) {
		unix.Unmount(m, unix.MNT_DETACH)
	}
	for _, ns := range netns {
		if _, err := os.Stat(ns); err == nil {
			unix.Unmount(ns, unix.MNT_DETACH)
			os.Remove(ns)
		}
	}
	exec.Command("ip", "link", "del", bridgeName).Run()
}

// sandboxNetNS reads the network namespace path of a sandbox from containerd's verbose status
// (the OCI spec it ran the sandbox with).
func sandboxNetNS(ctx context.Context, rt runtimeapi.RuntimeServiceClient, id string) []string {
	st, err := rt.PodSandboxStatus(ctx, &runtimeapi.PodSandboxStatusRequest{PodSandboxId: id, Verbose: true})
	if err != nil {
		return nil
	}
	var info struct {
		RuntimeSpec struct {
			Linux struct {
				Namespaces []struct{ Type, Path string }
			}
		}
	}
	if json.Unmarshal([]byte(st.Info["info"]), &info) != nil {
		return nil
	}
	var out []string
	for _, n := range info.RuntimeSpec.Linux.Namespaces {
		if n.Type == "network" && strings.HasPrefix(n.Path, "/var/run/netns/") {
			out = append(out, n.Path)
		}
	}
	return out
}

// mountsUnder lists mount points below dir, deepest first.
func mountsUnder(dir string) []string {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) > 4 && strings.HasPrefix(fs[4], dir+"/") {
			out = append(out, fs[4])
		}
	}
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out
}
