package kubelet

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/cache"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-project/berth/internal/version"
)

// nodeStatusPeriod is how often the node's status and Lease are renewed (upstream's defaults).
const (
	nodeStatusPeriod = 10 * time.Second
	leaseDuration    = 40
)

// runNode registers the Node, then renews its status and Lease until ctx is done.
func (k *Kubelet) runNode(ctx context.Context) error {
	for {
		err := k.registerNode(ctx)
		if err == nil {
			break
		}
		k.log.Error("registering node", "err", err)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(2 * time.Second):
		}
	}
	// The node's own object is watched, so a pod CIDR given by the controller reaches the
	// runtime (and Ready follows, for runtimes whose network waits for it) at once.
	cidrs := make(chan string, 1)
	go k.watchPodCIDR(ctx, cidrs)
	tick := time.NewTicker(nodeStatusPeriod)
	defer tick.Stop()
	podCIDR := ""
	for {
		if err := k.renewLease(ctx); err != nil {
			k.log.Error("renewing node lease", "err", err)
		}
		node, err := k.updateNodeStatus(ctx)
		if err != nil {
			k.log.Error("updating node status", "err", err)
		} else if node.Spec.PodCIDR != podCIDR {
			podCIDR = k.applyPodCIDR(ctx, podCIDR, node.Spec.PodCIDR)
		}
	wait:
		for {
			select {
			case <-ctx.Done():
				return nil
			case <-tick.C:
				break wait
			case cidr := <-cidrs:
				if cidr != podCIDR {
					podCIDR = k.applyPodCIDR(ctx, podCIDR, cidr)
				}
			}
		}
	}
}

// applyPodCIDR passes a new pod CIDR to the runtime and reports the node's status at once
// (the runtime's network may be ready now); it returns the CIDR the runtime has.
func (k *Kubelet) applyPodCIDR(ctx context.Context, old, cidr string) string {
	if err := k.setPodCIDR(ctx, cidr); err != nil {
		k.log.Error("passing the pod CIDR to the runtime", "cidr", cidr, "err", err)
		return old
	}
	if _, err := k.updateNodeStatus(ctx); err != nil {
		k.log.Error("updating node status", "err", err)
	}
	return cidr
}

// watchPodCIDR sends the node's spec.podCIDR whenever the node changes.
func (k *Kubelet) watchPodCIDR(ctx context.Context, out chan<- string) {
	lw := cache.NewListWatchFromClient(k.client.CoreV1().RESTClient(), "nodes", metav1.NamespaceAll,
		fields.OneTermEqualSelector("metadata.name", k.cfg.NodeName))
	inf := cache.NewSharedIndexInformer(listThenWatch{lw}, &corev1.Node{}, 0, cache.Indexers{})
	send := func(obj any) {
		n, ok := obj.(*corev1.Node)
		if !ok || n.Spec.PodCIDR == "" {
			return
		}
		select {
		case out <- n.Spec.PodCIDR:
		case <-ctx.Done():
		}
	}
	inf.AddEventHandler(cache.ResourceEventHandlerFuncs{AddFunc: send, UpdateFunc: func(_, obj any) { send(obj) }})
	inf.Run(ctx.Done())
}

func (k *Kubelet) setPodCIDR(ctx context.Context, cidr string) error {
	if cidr == "" {
		return nil
	}
	_, err := k.runtime.UpdateRuntimeConfig(ctx, &runtimeapi.UpdateRuntimeConfigRequest{
		RuntimeConfig: &runtimeapi.RuntimeConfig{NetworkConfig: &runtimeapi.NetworkConfig{PodCidr: cidr}}})
	if err == nil {
		k.log.Info("pod CIDR passed to the runtime", "cidr", cidr)
	}
	return err
}

// registerNode creates the Node, or brings an existing one's labels, addresses and capacity up
// to date (a restarted kubelet keeps the object and whatever the controllers put on it).
func (k *Kubelet) registerNode(ctx context.Context) error {
	want := k.initialNode()
	nodes := k.client.CoreV1().Nodes()
	_, err := nodes.Create(ctx, want, metav1.CreateOptions{})
	if err == nil {
		k.log.Info("node registered")
		return nil
	}
	if !apierrors.IsAlreadyExists(err) {
		return err
	}
	patch, _ := json.Marshal(map[string]any{"metadata": map[string]any{"labels": want.Labels}})
	if _, err := nodes.Patch(ctx, k.cfg.NodeName, types.StrategicMergePatchType, patch, metav1.PatchOptions{}); err != nil {
		return fmt.Errorf("node %s: %w", k.cfg.NodeName, err)
	}
	k.log.Info("node already registered; adopted")
	return nil
}

func (k *Kubelet) initialNode() *corev1.Node {
	labels := map[string]string{
		corev1.LabelHostname:      k.cfg.NodeName,
		corev1.LabelOSStable:      runtime.GOOS,
		corev1.LabelArchStable:    runtime.GOARCH,
		"beta.kubernetes.io/os":   runtime.GOOS,
		"beta.kubernetes.io/arch": runtime.GOARCH,
	}
	for key, v := range k.cfg.NodeLabels {
		labels[key] = v
	}
	n := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: k.cfg.NodeName, Labels: labels},
		Spec:       corev1.NodeSpec{Taints: k.cfg.RegisterWithTaints},
	}
	n.Status = k.nodeStatus(nil)
	return n
}

// updateNodeStatus patches nodes/status with fresh conditions, capacity and heartbeats.
func (k *Kubelet) updateNodeStatus(ctx context.Context) (*corev1.Node, error) {
	nodes := k.client.CoreV1().Nodes()
	cur, err := nodes.Get(ctx, k.cfg.NodeName, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		// Deleted under us (kubectl delete node): register again, as upstream does on restart.
		if err := k.registerNode(ctx); err != nil {
			return nil, err
		}
		cur, err = nodes.Get(ctx, k.cfg.NodeName, metav1.GetOptions{})
	}
	if err != nil {
		return nil, err
	}
	status := k.nodeStatus(cur)
	patch, err := json.Marshal(map[string]any{"status": status})
	if err != nil {
		return nil, err
	}
	return nodes.Patch(ctx, k.cfg.NodeName, types.StrategicMergePatchType, patch, metav1.PatchOptions{}, "status")
}

// nodeStatus computes the node's status; cur (may be nil) supplies the conditions' transition times.
func (k *Kubelet) nodeStatus(cur *corev1.Node) corev1.NodeStatus {
	now := metav1.Now()
	hostname, _ := os.Hostname()
	k.mu.Lock()
	ver := k.runtimeVer
	k.mu.Unlock()
	ready, readyMsg := k.runtimeReady()
	cond := func(t corev1.NodeConditionType, ok bool, reason, msg string) corev1.NodeCondition {
		st := corev1.ConditionFalse
		if ok {
			st = corev1.ConditionTrue
		}
		c := corev1.NodeCondition{Type: t, Status: st, Reason: reason, Message: msg, LastHeartbeatTime: now, LastTransitionTime: now}
		if cur != nil {
			for _, old := range cur.Status.Conditions {
				if old.Type == t && old.Status == st {
					c.LastTransitionTime = old.LastTransitionTime
				}
			}
		}
		return c
	}
	readyReason := "KubeletReady"
	if !ready {
		readyReason = "KubeletNotReady"
	} else {
		readyMsg = "kubelet is posting ready status"
	}
	capacity := k.capacity()
	pr := k.pressure()
	s := corev1.NodeStatus{
		Capacity:    capacity,
		Allocatable: capacity,
		Conditions: []corev1.NodeCondition{
			pressureCondition(cond, corev1.NodeMemoryPressure, pr.memory, "KubeletHasSufficientMemory", "kubelet has sufficient memory available", "KubeletHasInsufficientMemory", "kubelet has insufficient memory available"),
			pressureCondition(cond, corev1.NodeDiskPressure, pr.disk, "KubeletHasNoDiskPressure", "kubelet has no disk pressure", "KubeletHasDiskPressure", "kubelet has disk pressure"),
			pressureCondition(cond, corev1.NodePIDPressure, pr.pid, "KubeletHasSufficientPID", "kubelet has sufficient PID available", "KubeletHasInsufficientPID", "kubelet has insufficient PID available"),
			cond(corev1.NodeReady, ready, readyReason, readyMsg),
		},
		Addresses: []corev1.NodeAddress{
			{Type: corev1.NodeInternalIP, Address: k.cfg.NodeIP.String()},
			{Type: corev1.NodeHostName, Address: hostname},
		},
		DaemonEndpoints: corev1.NodeDaemonEndpoints{KubeletEndpoint: corev1.DaemonEndpoint{Port: k.servingPort()}},
		NodeInfo: corev1.NodeSystemInfo{
			MachineID:       strings.TrimSpace(readFile("/etc/machine-id")),
			BootID:          strings.TrimSpace(readFile("/proc/sys/kernel/random/boot_id")),
			KernelVersion:   kernelVersion(),
			OSImage:         osImage(),
			OperatingSystem: runtime.GOOS,
			Architecture:    runtime.GOARCH,
			KubeletVersion:  version.Kubernetes,
		},
	}
	if ver != nil {
		s.NodeInfo.ContainerRuntimeVersion = ver.RuntimeName + "://" + ver.RuntimeVersion
	}
	s.Images = k.nodeImages()
	return s
}

// maxNodeImages is how many images the node reports, largest first (upstream's default).
const maxNodeImages = 50

// nodeImages lists the runtime's images for status.images, which the scheduler's image
// locality scoring reads.
func (k *Kubelet) nodeImages() []corev1.ContainerImage {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := k.images.ListImages(ctx, &runtimeapi.ListImagesRequest{})
	if err != nil {
		return nil
	}
	imgs := resp.Images
	sort.Slice(imgs, func(i, j int) bool { return imgs[i].Size > imgs[j].Size })
	var out []corev1.ContainerImage
	for _, im := range imgs {
		names := append(append([]string{}, im.RepoDigests...), im.RepoTags...)
		if len(names) == 0 {
			continue
		}
		out = append(out, corev1.ContainerImage{Names: names, SizeBytes: int64(im.Size)})
		if len(out) == maxNodeImages {
			break
		}
	}
	return out
}

// runtimeReady asks CRI Status whether the runtime and its network are ready.
func (k *Kubelet) runtimeReady() (bool, string) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := k.runtime.Status(ctx, &runtimeapi.StatusRequest{})
	if err != nil {
		return false, "container runtime is down: " + err.Error()
	}
	var bad []string
	for _, c := range st.GetStatus().GetConditions() {
		if !c.Status {
			bad = append(bad, fmt.Sprintf("%s=false reason:%s message:%s", c.Type, c.Reason, c.Message))
		}
	}
	if len(bad) > 0 {
		return false, "container runtime not ready: " + strings.Join(bad, ", ")
	}
	return true, ""
}

func (k *Kubelet) capacity() corev1.ResourceList {
	var si unix.Sysinfo_t
	mem := int64(0)
	if unix.Sysinfo(&si) == nil {
		mem = int64(si.Totalram) * int64(si.Unit)
	}
	var fs unix.Statfs_t
	disk := int64(0)
	if unix.Statfs(k.cfg.RootDir, &fs) == nil {
		disk = int64(fs.Blocks) * fs.Bsize
	}
	return corev1.ResourceList{
		corev1.ResourceCPU:              *resource.NewQuantity(int64(runtime.NumCPU()), resource.DecimalSI),
		corev1.ResourceMemory:           *resource.NewQuantity(mem, resource.BinarySI),
		corev1.ResourcePods:             *resource.NewQuantity(int64(k.cfg.MaxPods), resource.DecimalSI),
		corev1.ResourceEphemeralStorage: *resource.NewQuantity(disk, resource.BinarySI),
	}
}

// renewLease creates or renews kube-node-lease/NODE, the node's cheap heartbeat.
func (k *Kubelet) renewLease(ctx context.Context) error {
	leases := k.client.CoordinationV1().Leases(corev1.NamespaceNodeLease)
	now := metav1.NewMicroTime(time.Now())
	l, err := leases.Get(ctx, k.cfg.NodeName, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		holder, dur := k.cfg.NodeName, int32(leaseDuration)
		l = &coordinationv1.Lease{
			ObjectMeta: metav1.ObjectMeta{Name: k.cfg.NodeName, Namespace: corev1.NamespaceNodeLease},
			Spec:       coordinationv1.LeaseSpec{HolderIdentity: &holder, LeaseDurationSeconds: &dur, RenewTime: &now},
		}
		if node, err := k.client.CoreV1().Nodes().Get(ctx, k.cfg.NodeName, metav1.GetOptions{}); err == nil {
			l.OwnerReferences = []metav1.OwnerReference{{APIVersion: "v1", Kind: "Node", Name: node.Name, UID: node.UID}}
		}
		_, err = leases.Create(ctx, l, metav1.CreateOptions{})
		return err
	}
	if err != nil {
		return err
	}
	l.Spec.RenewTime = &now
	_, err = leases.Update(ctx, l, metav1.UpdateOptions{})
	return err
}

func (k *Kubelet) servingPort() int32 {
	_, port, err := net.SplitHostPort(k.cfg.ServingAddr)
	if err != nil {
		return 0
	}
	p, _ := strconv.Atoi(port)
	return int32(p)
}

func readFile(p string) string {
	b, _ := os.ReadFile(p)
	return string(b)
}

func kernelVersion() string {
	var u unix.Utsname
	if unix.Uname(&u) != nil {
		return ""
	}
	return unix.ByteSliceToString(u.Release[:])
}

// osImage is PRETTY_NAME from os-release, as upstream reports it.
func osImage() string {
	for _, line := range strings.Split(readFile("/etc/os-release"), "\n") {
		if v, ok := strings.CutPrefix(line, "PRETTY_NAME="); ok {
			return strings.Trim(v, `"`)
		}
	}
	return runtime.GOOS
}

// nodePressure is which of upstream's default eviction thresholds the node is past:
// memory.available < 100Mi, nodefs.available < 10% or inodesFree < 5%, pid.available < 10%.
// The kubelet reports them; it does not evict.
type nodePressure struct{ memory, disk, pid bool }

// pressureMaxAge is how long a reading of the node's pressure serves: the status is computed
// at registration, on every renewal and when the pod CIDR arrives, often in the same moment,
// while each periodic renewal (a period after the last, give or take its latency) reads anew.
const pressureMaxAge = nodeStatusPeriod / 2

// pressure is the node's pressure, read at most once in pressureMaxAge.
func (k *Kubelet) pressure() nodePressure {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.pressedAt.IsZero() || time.Since(k.pressedAt) >= pressureMaxAge {
		k.pressed, k.pressedAt = k.readPressure(), time.Now()
	}
	return k.pressed
}

// readPressure reads memory, the root directory's file system and the process count.
func (k *Kubelet) readPressure() nodePressure {
	var p nodePressure
	for _, line := range strings.Split(readFile("/proc/meminfo"), "\n") {
		if v, ok := strings.CutPrefix(line, "MemAvailable:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			p.memory = kb > 0 && kb*1024 < 100<<20
		}
	}
	var fs unix.Statfs_t
	if unix.Statfs(k.cfg.RootDir, &fs) == nil && fs.Blocks > 0 {
		p.disk = fs.Bavail*10 < fs.Blocks || (fs.Files > 0 && fs.Ffree*20 < fs.Files)
	}
	pidMax, _ := strconv.Atoi(strings.TrimSpace(readFile("/proc/sys/kernel/pid_max")))
	var si unix.Sysinfo_t
	if pidMax > 0 && unix.Sysinfo(&si) == nil {
		p.pid = int(si.Procs)*10 > pidMax*9
	}
	return p
}

func pressureCondition(cond func(corev1.NodeConditionType, bool, string, string) corev1.NodeCondition, t corev1.NodeConditionType, under bool, okReason, okMsg, badReason, badMsg string) corev1.NodeCondition {
	if under {
		return cond(t, true, badReason, badMsg)
	}
	return cond(t, false, okReason, okMsg)
}
