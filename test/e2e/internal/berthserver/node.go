package berthserver

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Node names what the in-process node of a server started with --bridge, --pod-bridge
// and --cgroup-parent makes on the host, so that RemoveNode can take it away.
type Node struct {
	Bridges []string // each with its nftables table berth_NAME
	Cgroups []string // the --cgroup-parent of each node under dir
}

// RemoveNode removes the pods' containers through the node's engine (they outlive it),
// stops srv (if it started), and removes what its node left on the host: processes in
// its cgroups or with dir in their command line, its bridges and nftables tables, the
// mounts under dir and its cgroups. dir itself is left to the caller.
func RemoveNode(dir string, srv *Server, n Node) {
	sock := "unix://" + filepath.Join(dir, "run", "docker.sock")
	if ids, _ := exec.Command("docker", "-H", sock, "ps", "-aq").Output(); len(bytes.TrimSpace(ids)) > 0 {
		exec.Command("docker", append([]string{"-H", sock, "rm", "-f"}, strings.Fields(string(ids))...)...).Run()
	}
	if srv != nil {
		srv.Stop(15 * time.Second)
	}
	Sweep(dir, n)
}

// Sweep removes what the nodes whose data lives under dir left on the host once their
// servers and agents are stopped: the pods' infra processes, processes in their cgroups
// or with dir in their command line, their bridges and nftables tables, the mounts
// under dir and their cgroups.
func Sweep(dir string, n Node) {
	KillInfras(dir)
	for _, pid := range leftPIDs(dir, n.Cgroups) {
		syscall.Kill(pid, syscall.SIGKILL)
	}
	for _, l := range n.Bridges {
		exec.Command("ip", "link", "del", l).Run()
		exec.Command("nft", "delete", "table", "ip", "berth_"+l).Run()
	}
	mounts, _ := os.ReadFile("/proc/self/mounts")
	var ours []string
	for _, l := range strings.Split(string(mounts), "\n") {
		if f := strings.Fields(l); len(f) > 1 && strings.HasPrefix(f[1], dir+"/") {
			ours = append(ours, f[1])
		}
	}
	for i := len(ours) - 1; i >= 0; i-- {
		syscall.Unmount(ours[i], syscall.MNT_DETACH)
	}
	// The cgroups go once the killed processes have left.
	for deadline := time.Now().Add(5 * time.Second); len(n.Cgroups) > 0; {
		busy := false
		filepath.WalkDir("/sys/fs/cgroup", func(p string, d os.DirEntry, err error) error {
			if err != nil || !d.IsDir() || !slices.Contains(n.Cgroups, d.Name()) {
				return nil
			}
			exec.Command("find", p, "-depth", "-type", "d", "-exec", "rmdir", "{}", ";").Run()
			if _, err := os.Stat(p); err == nil {
				busy = true
			}
			return filepath.SkipDir
		})
		if !busy || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond) // polling for the killed processes to leave
	}
}

// leftPIDs are the processes of the node left behind: container supervisors in its
// cgroups, and anything else running from dir.
func leftPIDs(dir string, cgroups []string) []int {
	var pids []int
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		data, err := os.ReadFile(p)
		if err != nil || !strings.Contains(string(data), dir+"/") {
			continue
		}
		if pid, err := strconv.Atoi(filepath.Base(filepath.Dir(p))); err == nil && pid != os.Getpid() {
			pids = append(pids, pid)
		}
	}
	filepath.WalkDir("/sys/fs/cgroup", func(p string, d os.DirEntry, err error) error {
		if err == nil && d.Name() == "cgroup.procs" && slices.ContainsFunc(cgroups, func(cg string) bool { return strings.Contains(p, "/"+cg+"/") }) {
			data, _ := os.ReadFile(p)
			for _, f := range strings.Fields(string(data)) {
				if pid, err := strconv.Atoi(f); err == nil {
					pids = append(pids, pid)
				}
			}
		}
		return nil
	})
	return pids
}
