package server

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// The subset of upstream's stats/v1alpha1 Summary that metrics pipelines read: CPU and memory
// of the node, each pod and each container.
type summary struct {
	Node nodeStats  `json:"node"`
	Pods []podStats `json:"pods"`
}

type nodeStats struct {
	NodeName  string       `json:"nodeName"`
	StartTime metav1.Time  `json:"startTime"`
	CPU       *cpuStats    `json:"cpu,omitempty"`
	Memory    *memoryStats `json:"memory,omitempty"`
}

type podStats struct {
	PodRef     podRef           `json:"podRef"`
	StartTime  metav1.Time      `json:"startTime"`
	Containers []containerStats `json:"containers"`
	CPU        *cpuStats        `json:"cpu,omitempty"`
	Memory     *memoryStats     `json:"memory,omitempty"`
}

type podRef struct {
	Name      string `json:"name"`
	Namespace string `json:"namespace"`
	UID       string `json:"uid"`
}

type containerStats struct {
	Name      string       `json:"name"`
	StartTime metav1.Time  `json:"startTime"`
	CPU       *cpuStats    `json:"cpu,omitempty"`
	Memory    *memoryStats `json:"memory,omitempty"`
}

type cpuStats struct {
	Time                 metav1.Time `json:"time"`
	UsageNanoCores       *uint64     `json:"usageNanoCores,omitempty"`
	UsageCoreNanoSeconds *uint64     `json:"usageCoreNanoSeconds,omitempty"`
}

type memoryStats struct {
	Time            metav1.Time `json:"time"`
	AvailableBytes  *uint64     `json:"availableBytes,omitempty"`
	UsageBytes      *uint64     `json:"usageBytes,omitempty"`
	WorkingSetBytes *uint64     `json:"workingSetBytes,omitempty"`
}

// nodeCPU remembers the last /proc/stat sample, so the node's usageNanoCores is a rate.
type nodeCPU struct {
	mu    sync.Mutex
	at    time.Time
	total uint64
}

// summary builds the stats of the node and of the running containers, from CRI
// ListContainerStats and the node's /proc.
func (s *Server) summary(r *http.Request) (*summary, error) {
	now := metav1.Now()
	out := &summary{Node: nodeStats{NodeName: s.cfg.NodeName, StartTime: metav1.NewTime(bootTime())}}
	out.Node.CPU = s.cpu.sample(now)
	out.Node.Memory = nodeMemory(now)
	cs, err := s.cfg.Runtime.ListContainers(r.Context(), &runtimeapi.ListContainersRequest{Filter: &runtimeapi.ContainerFilter{
		State: &runtimeapi.ContainerStateValue{State: runtimeapi.ContainerState_CONTAINER_RUNNING}}})
	if err != nil {
		return nil, err
	}
	stats, err := s.cfg.Runtime.ListContainerStats(r.Context(), &runtimeapi.ListContainerStatsRequest{})
	if err != nil {
		return nil, err
	}
	byID := map[string]*runtimeapi.ContainerStats{}
	for _, st := range stats.Stats {
		byID[st.GetAttributes().GetId()] = st
	}
	pods := map[string]*podStats{}
	for _, c := range cs.Containers {
		uid := c.Labels["io.kubernetes.pod.uid"]
		if uid == "" {
			continue
		}
		p := pods[uid]
		if p == nil {
			p = &podStats{PodRef: podRef{Name: c.Labels["io.kubernetes.pod.name"], Namespace: c.Labels["io.kubernetes.pod.namespace"], UID: uid},
				CPU:    &cpuStats{Time: now, UsageNanoCores: new(uint64), UsageCoreNanoSeconds: new(uint64)},
				Memory: &memoryStats{Time: now, WorkingSetBytes: new(uint64), UsageBytes: new(uint64)}}
			pods[uid] = p
		}
		started := metav1.NewTime(time.Unix(0, c.CreatedAt))
		if p.StartTime.IsZero() || started.Before(&p.StartTime) {
			p.StartTime = started
		}
		ct := containerStats{Name: c.Labels["io.kubernetes.container.name"], StartTime: started}
		if st := byID[c.Id]; st != nil {
			if cpu := st.Cpu; cpu != nil {
				ct.CPU = &cpuStats{Time: metav1.NewTime(time.Unix(0, cpu.Timestamp))}
				if cpu.UsageCoreNanoSeconds != nil {
					v := cpu.UsageCoreNanoSeconds.Value
					ct.CPU.UsageCoreNanoSeconds = &v
					*p.CPU.UsageCoreNanoSeconds += v
				}
				if cpu.UsageNanoCores != nil {
					v := cpu.UsageNanoCores.Value
					ct.CPU.UsageNanoCores = &v
					*p.CPU.UsageNanoCores += v
				}
			}
			if m := st.Memory; m != nil {
				ct.Memory = &memoryStats{Time: metav1.NewTime(time.Unix(0, m.Timestamp))}
				if m.WorkingSetBytes != nil {
					v := m.WorkingSetBytes.Value
					ct.Memory.WorkingSetBytes = &v
					*p.Memory.WorkingSetBytes += v
				}
				if m.UsageBytes != nil {
					v := m.UsageBytes.Value
					ct.Memory.UsageBytes = &v
					*p.Memory.UsageBytes += v
				}
			}
		}
		p.Containers = append(p.Containers, ct)
	}
	for _, p := range pods {
		sort.Slice(p.Containers, func(i, j int) bool { return p.Containers[i].Name < p.Containers[j].Name })
		out.Pods = append(out.Pods, *p)
	}
	sort.Slice(out.Pods, func(i, j int) bool {
		return out.Pods[i].PodRef.Namespace+"/"+out.Pods[i].PodRef.Name < out.Pods[j].PodRef.Namespace+"/"+out.Pods[j].PodRef.Name
	})
	return out, nil
}

func (s *Server) statsSummary(w http.ResponseWriter, r *http.Request) {
	sum, err := s.summary(r)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(sum)
}

// metricsResource serves upstream's /metrics/resource (Prometheus text), which metrics-server
// scrapes.
func (s *Server) metricsResource(w http.ResponseWriter, r *http.Request) {
	sum, err := s.summary(r)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/plain; version=0.0.4")
	ms := func(t metav1.Time) int64 { return t.UnixMilli() }
	fmt.Fprintf(w, "# HELP node_cpu_usage_seconds_total [STABLE] Cumulative cpu time consumed by the node in core-seconds\n# TYPE node_cpu_usage_seconds_total counter\n")
	if c := sum.Node.CPU; c != nil && c.UsageCoreNanoSeconds != nil {
		fmt.Fprintf(w, "node_cpu_usage_seconds_total %g %d\n", float64(*c.UsageCoreNanoSeconds)/1e9, ms(c.Time))
	}
	fmt.Fprintf(w, "# HELP node_memory_working_set_bytes [STABLE] Current working set of the node in bytes\n# TYPE node_memory_working_set_bytes gauge\n")
	if m := sum.Node.Memory; m != nil && m.WorkingSetBytes != nil {
		fmt.Fprintf(w, "node_memory_working_set_bytes %d %d\n", *m.WorkingSetBytes, ms(m.Time))
	}
	fmt.Fprintf(w, "# HELP container_cpu_usage_seconds_total [STABLE] Cumulative cpu time consumed by the container in core-seconds\n# TYPE container_cpu_usage_seconds_total counter\n")
	for _, p := range sum.Pods {
		for _, c := range p.Containers {
			if c.CPU != nil && c.CPU.UsageCoreNanoSeconds != nil {
				fmt.Fprintf(w, "container_cpu_usage_seconds_total{container=%q,namespace=%q,pod=%q} %g %d\n", c.Name, p.PodRef.Namespace, p.PodRef.Name, float64(*c.CPU.UsageCoreNanoSeconds)/1e9, ms(c.CPU.Time))
			}
		}
	}
	fmt.Fprintf(w, "# HELP container_memory_working_set_bytes [STABLE] Current working set of the container in bytes\n# TYPE container_memory_working_set_bytes gauge\n")
	for _, p := range sum.Pods {
		for _, c := range p.Containers {
			if c.Memory != nil && c.Memory.WorkingSetBytes != nil {
				fmt.Fprintf(w, "container_memory_working_set_bytes{container=%q,namespace=%q,pod=%q} %d %d\n", c.Name, p.PodRef.Namespace, p.PodRef.Name, *c.Memory.WorkingSetBytes, ms(c.Memory.Time))
			}
		}
	}
	fmt.Fprintf(w, "# HELP container_start_time_seconds [STABLE] Start time of the container since unix epoch in seconds\n# TYPE container_start_time_seconds gauge\n")
	for _, p := range sum.Pods {
		for _, c := range p.Containers {
			fmt.Fprintf(w, "container_start_time_seconds{container=%q,namespace=%q,pod=%q} %d\n", c.Name, p.PodRef.Namespace, p.PodRef.Name, c.StartTime.Unix())
		}
	}
	fmt.Fprintf(w, "# HELP scrape_error [ALPHA] 1 if there was an error while getting container metrics, 0 otherwise\n# TYPE scrape_error gauge\nscrape_error 0\n")
}

// sample reads the node's cumulative CPU time from /proc/stat and the rate since the last call.
func (n *nodeCPU) sample(now metav1.Time) *cpuStats {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return nil
	}
	line, _, _ := strings.Cut(string(b), "\n")
	fs := strings.Fields(line)
	if len(fs) < 8 || fs[0] != "cpu" {
		return nil
	}
	var ticks uint64
	for i, f := range fs[1:] {
		if i == 3 || i == 4 { // idle, iowait
			continue
		}
		v, _ := strconv.ParseUint(f, 10, 64)
		ticks += v
	}
	total := ticks * uint64(time.Second/100) // USER_HZ is 100 on Linux
	st := &cpuStats{Time: now, UsageCoreNanoSeconds: &total}
	n.mu.Lock()
	defer n.mu.Unlock()
	if !n.at.IsZero() && now.Time.After(n.at) && total >= n.total {
		rate := uint64(float64(total-n.total) / now.Time.Sub(n.at).Seconds())
		st.UsageNanoCores = &rate
	}
	n.at, n.total = now.Time, total
	return st
}

// nodeMemory is the node's memory from /proc/meminfo; the working set is what is not available.
func nodeMemory(now metav1.Time) *memoryStats {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return nil
	}
	defer f.Close()
	vals := map[string]uint64{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) >= 2 {
			v, _ := strconv.ParseUint(fs[1], 10, 64)
			vals[strings.TrimSuffix(fs[0], ":")] = v * 1024
		}
	}
	total, avail := vals["MemTotal"], vals["MemAvailable"]
	used := total - avail
	usage := total - vals["MemFree"]
	return &memoryStats{Time: now, AvailableBytes: &avail, WorkingSetBytes: &used, UsageBytes: &usage}
}

func bootTime() time.Time {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return time.Time{}
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "btime "); ok {
			n, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			return time.Unix(n, 0)
		}
	}
	return time.Time{}
}
