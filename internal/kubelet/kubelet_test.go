package kubelet

import (
	"net"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestExpandFollowsUpstreamRules(t *testing.T) {
	vals := map[string]string{"A": "1", "B": "two"}
	for in, want := range map[string]string{
		"plain":          "plain",
		"$(A)":           "1",
		"x$(A)y$(B)z":    "x1ytwoz",
		"$(MISSING)":     "$(MISSING)",
		"$$(A)":          "$(A)",
		"$$":             "$",
		"cost $5":        "cost $5",
		"$(unterminated": "$(unterminated",
		"end$":           "end$",
	} {
		if got := expand(in, vals); got != want {
			t.Errorf("expand(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestBackoffDoublesUpToFiveMinutesAndResets(t *testing.T) {
	now := time.Unix(1000, 0)
	b := newBackoff()
	b.now = func() time.Time { return now }
	if d := b.wait("k", now); d != 0 {
		t.Fatalf("first failure waits %s", d)
	}
	var delays []time.Duration
	for range 7 {
		b.next("k")
		delays = append(delays, b.delay("k"))
		now = now.Add(time.Second)
		if d := b.wait("k", now); d <= 0 {
			t.Fatalf("a crash a second after a restart is not backed off (delay %s)", b.delay("k"))
		}
	}
	want := []time.Duration{10 * time.Second, 20 * time.Second, 40 * time.Second, 80 * time.Second, 160 * time.Second, 300 * time.Second, 300 * time.Second}
	if diff := cmp.Diff(want, delays); diff != "" {
		t.Errorf("delays (-want +got):\n%s", diff)
	}
	// A container that ran longer than its back-off restarts at once.
	if d := b.wait("k", now.Add(6*time.Minute)); d != 0 {
		t.Errorf("after a long run: wait %s", d)
	}
	now = now.Add(11 * time.Minute)
	b.next("k")
	if d := b.delay("k"); d != backoffInitial {
		t.Errorf("after ten quiet minutes the delay is %s, want %s", d, backoffInitial)
	}
	b.forget("k")
	if d := b.wait("k", now); d != 0 {
		t.Errorf("forgotten key still waits %s", d)
	}
}

func status(states ...corev1.ContainerState) corev1.PodStatus {
	var s corev1.PodStatus
	for _, st := range states {
		s.ContainerStatuses = append(s.ContainerStatuses, corev1.ContainerStatus{State: st})
	}
	return s
}

func TestPodPhase(t *testing.T) {
	run := corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}
	wait := corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "ContainerCreating"}}
	ok := corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 0}}
	bad := corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 1}}
	backoff := corev1.PodStatus{ContainerStatuses: []corev1.ContainerStatus{{
		State:                corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff"}},
		LastTerminationState: bad,
	}}}
	for _, tc := range []struct {
		name     string
		policy   corev1.RestartPolicy
		status   corev1.PodStatus
		initDone bool
		want     corev1.PodPhase
	}{
		{"not initialised", corev1.RestartPolicyAlways, status(run), false, corev1.PodPending},
		{"creating", corev1.RestartPolicyAlways, status(run, wait), true, corev1.PodPending},
		{"running", corev1.RestartPolicyAlways, status(run, ok), true, corev1.PodRunning},
		{"crash loop is running", corev1.RestartPolicyAlways, backoff, true, corev1.PodRunning},
		{"all done, always restarts", corev1.RestartPolicyAlways, status(ok), true, corev1.PodRunning},
		{"never: succeeded", corev1.RestartPolicyNever, status(ok, ok), true, corev1.PodSucceeded},
		{"never: failed", corev1.RestartPolicyNever, status(ok, bad), true, corev1.PodFailed},
		{"on failure: restarting", corev1.RestartPolicyOnFailure, status(bad), true, corev1.PodRunning},
		{"on failure: succeeded", corev1.RestartPolicyOnFailure, status(ok), true, corev1.PodSucceeded},
	} {
		pod := &corev1.Pod{Spec: corev1.PodSpec{RestartPolicy: tc.policy}}
		if got := podPhase(pod, tc.status, tc.initDone); got != tc.want {
			t.Errorf("%s: %s, want %s", tc.name, got, tc.want)
		}
	}
	failedInit := corev1.PodStatus{InitContainerStatuses: []corev1.ContainerStatus{{State: bad}}}
	if got := podPhase(&corev1.Pod{Spec: corev1.PodSpec{RestartPolicy: corev1.RestartPolicyNever}}, failedInit, false); got != corev1.PodFailed {
		t.Errorf("failed init container with restartPolicy Never: %s", got)
	}
}

func resources(req, lim string) corev1.ResourceRequirements {
	r := corev1.ResourceRequirements{}
	if req != "" {
		r.Requests = corev1.ResourceList{corev1.ResourceCPU: resource.MustParse(req), corev1.ResourceMemory: resource.MustParse("64Mi")}
	}
	if lim != "" {
		r.Limits = corev1.ResourceList{corev1.ResourceCPU: resource.MustParse(lim), corev1.ResourceMemory: resource.MustParse("64Mi")}
	}
	return r
}

func TestQOSClassAndCgroupSettings(t *testing.T) {
	k := &Kubelet{cfg: Config{RootDir: t.TempDir()}}
	for _, tc := range []struct {
		name            string
		res             corev1.ResourceRequirements
		qos             corev1.PodQOSClass
		shares, quota   int64
		memory, oomNear int64
	}{
		{"best effort", corev1.ResourceRequirements{}, corev1.PodQOSBestEffort, 2, 0, 0, 1000},
		{"guaranteed", resources("500m", "500m"), corev1.PodQOSGuaranteed, 512, 50000, 64 << 20, -997},
		{"limits only are guaranteed", resources("", "250m"), corev1.PodQOSGuaranteed, 256, 25000, 64 << 20, -997},
		{"burstable", resources("100m", "1"), corev1.PodQOSBurstable, 102, 100000, 64 << 20, 999},
	} {
		pod := &corev1.Pod{Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Resources: tc.res}}}}
		if got := qosClass(pod); got != tc.qos {
			t.Errorf("%s: qos %s, want %s", tc.name, got, tc.qos)
		}
		r := k.containerResources(pod, &pod.Spec.Containers[0])
		if r.CpuShares != tc.shares || r.CpuQuota != tc.quota || r.MemoryLimitInBytes != tc.memory {
			t.Errorf("%s: shares %d quota %d memory %d, want %d %d %d", tc.name, r.CpuShares, r.CpuQuota, r.MemoryLimitInBytes, tc.shares, tc.quota, tc.memory)
		}
		if tc.qos != corev1.PodQOSBurstable && r.OomScoreAdj != tc.oomNear {
			t.Errorf("%s: oom_score_adj %d, want %d", tc.name, r.OomScoreAdj, tc.oomNear)
		}
		if tc.qos == corev1.PodQOSBurstable && (r.OomScoreAdj < 2 || r.OomScoreAdj > 999) {
			t.Errorf("%s: oom_score_adj %d out of [2,999]", tc.name, r.OomScoreAdj)
		}
	}
}

func TestDNSConfigFollowsDNSPolicy(t *testing.T) {
	k := &Kubelet{cfg: Config{ClusterDNS: []string{"10.43.0.10"}, ClusterDomain: "cluster.local", NodeIP: net.IPv4(10, 0, 0, 1)}}
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "shop"}}
	c := k.dnsConfig(pod)
	if diff := cmp.Diff([]string{"10.43.0.10"}, c.Servers); diff != "" {
		t.Errorf("ClusterFirst servers (-want +got):\n%s", diff)
	}
	if len(c.Searches) < 3 || c.Searches[0] != "shop.svc.cluster.local" || c.Searches[1] != "svc.cluster.local" || c.Searches[2] != "cluster.local" {
		t.Errorf("ClusterFirst searches: %v", c.Searches)
	}
	if diff := cmp.Diff([]string{"ndots:5"}, c.Options); diff != "" {
		t.Errorf("options (-want +got):\n%s", diff)
	}
	host := *pod
	host.Spec.HostNetwork = true
	if c := k.dnsConfig(&host); len(c.Servers) > 0 && c.Servers[0] == "10.43.0.10" {
		t.Errorf("hostNetwork with ClusterFirst uses the node's DNS, got %v", c.Servers)
	}
	withHost := host
	withHost.Spec.DNSPolicy = corev1.DNSClusterFirstWithHostNet
	if c := k.dnsConfig(&withHost); len(c.Servers) == 0 || c.Servers[0] != "10.43.0.10" {
		t.Errorf("ClusterFirstWithHostNet: %v", c.Servers)
	}
	none := *pod
	five := "2"
	none.Spec.DNSPolicy = corev1.DNSNone
	none.Spec.DNSConfig = &corev1.PodDNSConfig{Nameservers: []string{"1.2.3.4"}, Searches: []string{"example"}, Options: []corev1.PodDNSConfigOption{{Name: "ndots", Value: &five}, {Name: "edns0"}}}
	c = k.dnsConfig(&none)
	if diff := cmp.Diff([]string{"1.2.3.4", "example", "ndots:2", "edns0"}, append(append(c.Servers, c.Searches...), c.Options...)); diff != "" {
		t.Errorf("None with dnsConfig (-want +got):\n%s", diff)
	}
}

func TestContainerSecurityMergesPodAndContainer(t *testing.T) {
	uid, gid, cuid := int64(1000), int64(2000), int64(3000)
	no, yes := false, true
	pod := &corev1.Pod{Spec: corev1.PodSpec{SecurityContext: &corev1.PodSecurityContext{RunAsUser: &uid, RunAsGroup: &gid, SupplementalGroups: []int64{5}}}}
	c := &corev1.Container{SecurityContext: &corev1.SecurityContext{
		RunAsUser: &cuid, AllowPrivilegeEscalation: &no, ReadOnlyRootFilesystem: &yes,
		Capabilities: &corev1.Capabilities{Add: []corev1.Capability{"NET_ADMIN"}, Drop: []corev1.Capability{"ALL"}},
	}}
	s := containerSecurity(pod, c)
	if s.RunAsUser.GetValue() != 3000 || s.RunAsGroup.GetValue() != 2000 || !s.NoNewPrivs || !s.ReadonlyRootfs || s.Privileged {
		t.Errorf("merged: %+v", s)
	}
	if diff := cmp.Diff([]string{"NET_ADMIN"}, s.Capabilities.AddCapabilities); diff != "" {
		t.Errorf("caps (-want +got):\n%s", diff)
	}
	if len(s.MaskedPaths) == 0 || len(s.ReadonlyPaths) == 0 {
		t.Errorf("default masked and read-only paths missing")
	}
	c.SecurityContext.Privileged = &yes
	if s := containerSecurity(pod, c); !s.Privileged || len(s.MaskedPaths) != 0 {
		t.Errorf("privileged: %+v", s)
	}
}
