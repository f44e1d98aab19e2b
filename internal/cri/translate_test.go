package cri

import (
	"bytes"
	"testing"

	"github.com/google/go-cmp/cmp"
	dcontainer "github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/api/types/strslice"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-project/berth/internal/engine/container"
)

func TestCreateOptionsTranslateTheContainerConfig(t *testing.T) {
	c := &runtimeapi.ContainerConfig{
		Metadata: &runtimeapi.ContainerMetadata{Name: "app", Attempt: 2},
		Image:    &runtimeapi.ImageSpec{Image: "sha256:abc", UserSpecifiedImage: "bb:1.0"},
		Command:  []string{"/bin/sh"}, Args: []string{"-c", "true"}, WorkingDir: "/w",
		Envs:        []*runtimeapi.KeyValue{{Key: "A", Value: []byte("1")}},
		Labels:      map[string]string{"l": "v"},
		Annotations: map[string]string{"a": "v"},
		LogPath:     "app/2.log",
		StopSignal:  runtimeapi.Signal_SIGNAL_SIGQUIT,
		Mounts: []*runtimeapi.Mount{
			{HostPath: "/h", ContainerPath: "/c", Readonly: true, Propagation: runtimeapi.MountPropagation_PROPAGATION_HOST_TO_CONTAINER},
		},
		Linux: &runtimeapi.LinuxContainerConfig{
			Resources: &runtimeapi.LinuxContainerResources{CpuShares: 512, CpuQuota: 50000, CpuPeriod: 100000, MemoryLimitInBytes: 64 << 20, OomScoreAdj: 999},
			SecurityContext: &runtimeapi.LinuxContainerSecurityContext{
				RunAsUser: &runtimeapi.Int64Value{Value: 1000}, RunAsGroup: &runtimeapi.Int64Value{Value: 2000},
				SupplementalGroups: []int64{3000}, NoNewPrivs: true, ReadonlyRootfs: true,
				Capabilities: &runtimeapi.Capability{AddCapabilities: []string{"NET_ADMIN"}, DropCapabilities: []string{"CHOWN"}},
				MaskedPaths:  []string{"/proc/kcore"}, ReadonlyPaths: []string{},
				NamespaceOptions: &runtimeapi.NamespaceOption{Pid: runtimeapi.NamespaceMode_CONTAINER},
			},
		},
	}
	o, err := createOptions(c)
	if err != nil {
		t.Fatal(err)
	}
	wantCfg := &dcontainer.Config{
		Image: "sha256:abc", Entrypoint: strslice.StrSlice{"/bin/sh"}, Cmd: strslice.StrSlice{"-c", "true"}, WorkingDir: "/w",
		Env: []string{"A=1"}, Labels: map[string]string{"l": "v"}, User: "1000:2000", StopSignal: "SIGQUIT",
	}
	if d := cmp.Diff(wantCfg, o.Config); d != "" {
		t.Errorf("config (-want,+got):\n%s", d)
	}
	hc := o.HostConfig
	wantHC := &dcontainer.HostConfig{
		Mounts:         []mount.Mount{{Type: mount.TypeBind, Source: "/h", Target: "/c", ReadOnly: true, BindOptions: &mount.BindOptions{Propagation: mount.PropagationRSlave}}},
		GroupAdd:       []string{"3000"},
		ReadonlyRootfs: true, CapAdd: []string{"NET_ADMIN"}, CapDrop: []string{"CHOWN"},
		SecurityOpt: []string{"no-new-privileges"}, MaskedPaths: []string{"/proc/kcore"}, ReadonlyPaths: []string{},
		Resources:   dcontainer.Resources{CPUShares: 512, CPUQuota: 50000, CPUPeriod: 100000, Memory: 64 << 20},
		OomScoreAdj: 999,
	}
	if d := cmp.Diff(wantHC, hc); d != "" {
		t.Errorf("host config (-want,+got):\n%s", d)
	}
	wantPod := &container.Pod{Name: "app", Attempt: 2, Labels: map[string]string{"l": "v"}, Annotations: map[string]string{"a": "v"},
		LogPath: "app/2.log", Image: "bb:1.0", PID: "container"}
	if d := cmp.Diff(wantPod, o.Pod); d != "" {
		t.Errorf("pod (-want,+got):\n%s", d)
	}
}

func TestCreateOptionsDefaults(t *testing.T) {
	o, err := createOptions(&runtimeapi.ContainerConfig{Metadata: &runtimeapi.ContainerMetadata{Name: "x"}, Image: &runtimeapi.ImageSpec{Image: "bb"}})
	if err != nil {
		t.Fatal(err)
	}
	// No command: the image's entrypoint stays (nil, not empty). No namespace options:
	// the CRI's zero value, the pod's PID namespace.
	if o.Config.Entrypoint != nil || o.Pod.PID != "pod" || o.Pod.Image != "bb" {
		t.Fatalf("defaults: entrypoint %#v, pid %q, image %q", o.Config.Entrypoint, o.Pod.PID, o.Pod.Image)
	}
	for _, bad := range []*runtimeapi.ContainerConfig{nil, {Image: &runtimeapi.ImageSpec{Image: "bb"}}, {Metadata: &runtimeapi.ContainerMetadata{Name: "x"}}} {
		if _, err := createOptions(bad); err == nil {
			t.Errorf("createOptions(%v) accepted a config without metadata or image", bad)
		}
	}
}

func TestIPv4CIDRPicksTheKubeletsIPv4PodCIDR(t *testing.T) {
	for in, want := range map[string]string{
		"10.42.1.0/24": "10.42.1.0/24", "fd00::/64,10.42.1.0/24": "10.42.1.0/24", "10.42.1.0/24, fd00::/64": "10.42.1.0/24",
		"fd00::/64": "", "": "", "nonsense": "",
	} {
		if got := ipv4CIDR(in); got != want {
			t.Errorf("ipv4CIDR(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestDemuxSplitsFramesEvenWhenCutAnywhere(t *testing.T) {
	frames := []byte{}
	add := func(stream byte, s string) {
		frames = append(frames, stream, 0, 0, 0, 0, 0, 0, byte(len(s)))
		frames = append(frames, s...)
	}
	add(1, "out one ")
	add(2, "err")
	add(1, "out two")
	for cut := 0; cut <= len(frames); cut++ {
		var out, errb bytes.Buffer
		d := &demux{out: &out, err: &errb}
		d.Write(frames[:cut])
		d.Write(frames[cut:])
		if out.String() != "out one out two" || errb.String() != "err" {
			t.Fatalf("cut at %d: stdout %q, stderr %q", cut, out.String(), errb.String())
		}
	}
}

func TestLabelsMatchNeedsEveryPair(t *testing.T) {
	labels := map[string]string{"app": "web", "tier": "front"}
	for _, tc := range []struct {
		sel  map[string]string
		want bool
	}{
		{nil, true}, {map[string]string{"app": "web"}, true}, {map[string]string{"app": "web", "tier": "front"}, true},
		{map[string]string{"app": "db"}, false}, {map[string]string{"missing": ""}, false},
	} {
		if got := labelsMatch(labels, tc.sel); got != tc.want {
			t.Errorf("labelsMatch(%v) = %v, want %v", tc.sel, got, tc.want)
		}
	}
}
