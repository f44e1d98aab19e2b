package testobj

import (
	"context"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"

	"github.com/berth-project/berth/internal/scheduler/framework"
)

// Cluster is a snapshot of nodes with pods bound to them (by spec.nodeName).
func Cluster(nodes []*corev1.Node, pods ...*corev1.Pod) *framework.Snapshot {
	var infos []*framework.NodeInfo
	for _, n := range nodes {
		info := framework.NewNodeInfo(n)
		for _, p := range pods {
			if p.Spec.NodeName == n.Name {
				info.AddPod(framework.NewPodInfo(p))
			}
		}
		infos = append(infos, info)
	}
	return framework.NewSnapshot(infos...)
}

// Filter runs a framework of the given plugins over every node of the cluster for
// pod, and says per node "" (fits, or every plugin's PreFilter skipped) or
// "Code: reason, reason".
func Filter(pod *corev1.Pod, cluster *framework.Snapshot, plugins ...framework.Plugin) (map[string]string, error) {
	var entries []framework.Entry
	for _, p := range plugins {
		entries = append(entries, framework.Entry{Plugin: p})
	}
	fw, err := framework.New(1, entries...)
	if err != nil {
		return nil, err
	}
	ctx, state := context.Background(), framework.NewCycleState()
	out := map[string]string{}
	if st := fw.RunPreFilter(ctx, state, pod, cluster); !st.IsSuccess() {
		for _, n := range cluster.List() {
			out[n.Name()] = describe(st)
		}
		return out, nil
	}
	for _, n := range cluster.List() {
		out[n.Name()] = describe(fw.RunFilter(ctx, state, pod, n))
	}
	return out, nil
}

func describe(st *framework.Status) string {
	if st.IsSuccess() {
		return ""
	}
	return fmt.Sprintf("%s: %s", st.Code(), strings.Join(st.Reasons(), ", "))
}

// Score runs a framework of one score plugin (weight 1) over every node of the
// cluster for pod and returns the normalised scores by node (all 0 when PreScore skips).
func Score(pod *corev1.Pod, cluster *framework.Snapshot, plugin framework.Plugin) (map[string]int64, error) {
	fw, err := framework.New(1, framework.Entry{Plugin: plugin})
	if err != nil {
		return nil, err
	}
	ctx, state := context.Background(), framework.NewCycleState()
	if st := fw.RunPreFilter(ctx, state, pod, cluster); !st.IsSuccess() {
		return nil, st.AsError()
	}
	totals, st := fw.RunScore(ctx, state, pod, cluster.List(), cluster)
	if !st.IsSuccess() {
		return nil, st.AsError()
	}
	out := map[string]int64{}
	for i, n := range cluster.List() {
		out[n.Name()] = totals[i]
	}
	return out, nil
}
