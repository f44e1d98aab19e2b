package runtime

import (
	"slices"
	"strings"
	"testing"

	"github.com/moby/sys/capability"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func namespaces(sp *specs.Spec) map[specs.LinuxNamespaceType]string {
	out := map[specs.LinuxNamespaceType]string{}
	for _, n := range sp.Linux.Namespaces {
		out[n.Type] = n.Path
	}
	return out
}

func TestOCISpecJoinsAPodsNamespaces(t *testing.T) {
	sp := OCISpec(Spec{NetNS: "/run/netns/pod", Hostname: "web", Linux: Linux{
		IPCNS: "/proc/42/ns/ipc", UTSNS: "/proc/42/ns/uts", PIDNS: "/proc/42/ns/pid",
	}})
	ns := namespaces(sp)
	want := map[specs.LinuxNamespaceType]string{
		specs.NetworkNamespace: "/run/netns/pod", specs.IPCNamespace: "/proc/42/ns/ipc",
		specs.UTSNamespace: "/proc/42/ns/uts", specs.PIDNamespace: "/proc/42/ns/pid", specs.MountNamespace: "", specs.CgroupNamespace: "",
	}
	if len(ns) != len(want) {
		t.Fatalf("namespaces %v, want %v", ns, want)
	}
	for typ, p := range want {
		if got, ok := ns[typ]; !ok || got != p {
			t.Errorf("%s namespace: %q (present %v), want %q", typ, got, ok, p)
		}
	}
	if sp.Hostname != "web" {
		t.Errorf("hostname %q", sp.Hostname)
	}
}

func TestOCISpecSharesTheHostsIPCAndPID(t *testing.T) {
	sp := OCISpec(Spec{Linux: Linux{HostIPC: true, HostPID: true}})
	ns := namespaces(sp)
	if _, ok := ns[specs.IPCNamespace]; ok {
		t.Error("an IPC namespace of its own with HostIPC")
	}
	if _, ok := ns[specs.PIDNamespace]; ok {
		t.Error("a PID namespace of its own with HostPID")
	}
	for _, m := range sp.Mounts {
		if m.Destination == "/dev/mqueue" {
			t.Error("an mqueue of its own with the host's IPC namespace")
		}
	}
}

func TestOCISpecCgroupNamespace(t *testing.T) {
	if _, ok := namespaces(OCISpec(Spec{}))[specs.CgroupNamespace]; !ok {
		t.Error("no cgroup namespace of its own by default")
	}
	if _, ok := namespaces(OCISpec(Spec{Linux: Linux{HostCgroupNS: true}}))[specs.CgroupNamespace]; ok {
		t.Error("a cgroup namespace of its own with HostCgroupNS (--cgroupns host)")
	}
}

func TestOCISpecCgroupKnobsAndSecurity(t *testing.T) {
	adj, off := 500, false
	sp := OCISpec(Spec{NanoCPUs: 2e9, Linux: Linux{
		CPUShares: 256, CPUQuota: 50000, CPUPeriod: 200000, CpusetCpus: "0", OOMScoreAdj: &adj,
		Sysctls: map[string]string{"net.ipv4.ip_forward": "1"}, MaskedPaths: []string{}, NoNewPrivs: &off,
		RootfsPropagation: "rslave",
	}})
	cpu := sp.Linux.Resources.CPU
	if *cpu.Shares != 256 || *cpu.Quota != 50000 || *cpu.Period != 200000 || cpu.Cpus != "0" {
		t.Errorf("cpu: shares %d quota %d period %d cpus %q", *cpu.Shares, *cpu.Quota, *cpu.Period, cpu.Cpus)
	}
	if *sp.Process.OOMScoreAdj != 500 || sp.Linux.Sysctl["net.ipv4.ip_forward"] != "1" || sp.Linux.RootfsPropagation != "rslave" {
		t.Errorf("oom %d sysctls %v propagation %q", *sp.Process.OOMScoreAdj, sp.Linux.Sysctl, sp.Linux.RootfsPropagation)
	}
	if len(sp.Linux.MaskedPaths) != 0 || len(sp.Linux.ReadonlyPaths) == 0 {
		t.Errorf("an empty masked list replaces the defaults, an absent read-only list keeps them: %v %v", sp.Linux.MaskedPaths, sp.Linux.ReadonlyPaths)
	}
	if sp.Process.NoNewPrivileges {
		t.Error("no_new_privs set although the container asked for it off")
	}
}

func TestOCISpecDevices(t *testing.T) {
	sp := OCISpec(Spec{Linux: Linux{Devices: []Device{
		{Path: "/dev/mynull", HostPath: "/dev/null", Permissions: "rw"},
		{HostPath: "/dev/does-not-exist", Permissions: "rwm"},
	}}})
	if len(sp.Linux.Devices) != 1 || sp.Linux.Devices[0].Path != "/dev/mynull" || sp.Linux.Devices[0].Type != "c" ||
		sp.Linux.Devices[0].Major != 1 || sp.Linux.Devices[0].Minor != 3 {
		t.Fatalf("devices: %+v", sp.Linux.Devices)
	}
	rules := sp.Linux.Resources.Devices
	last := rules[len(rules)-1]
	if !last.Allow || last.Access != "rw" || *last.Major != 1 || *last.Minor != 3 {
		t.Fatalf("device cgroup rule: %+v", last)
	}
}

func TestOCISpecPrivilegedGetsTheBoundingSet(t *testing.T) {
	self, err := capability.NewPid2(0)
	if err == nil {
		err = self.Load()
	}
	if err != nil {
		t.Skip("cannot read this process's capabilities:", err)
	}
	got := OCISpec(Spec{Privileged: true}).Process.Capabilities.Bounding
	held := 0
	for _, c := range capability.ListKnown() {
		name := "CAP_" + strings.ToUpper(c.String())
		if self.Get(capability.BOUNDING, c) != slices.Contains(got, name) {
			t.Errorf("%s: in our bounding set %v, granted to a privileged container %v", name, self.Get(capability.BOUNDING, c), slices.Contains(got, name))
		}
		if self.Get(capability.BOUNDING, c) {
			held++
		}
	}
	if len(got) != held {
		t.Errorf("granted %d capabilities, %d held: %v", len(got), held, got)
	}
}
