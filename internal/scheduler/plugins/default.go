// Package plugins lists the scheduler's default plugins; each concern is a package
// beneath this one.
package plugins

import (
	"github.com/berth-project/berth/internal/scheduler/framework"
	"github.com/berth-project/berth/internal/scheduler/plugins/interpodaffinity"
	"github.com/berth-project/berth/internal/scheduler/plugins/nodeaffinity"
	"github.com/berth-project/berth/internal/scheduler/plugins/nodename"
	"github.com/berth-project/berth/internal/scheduler/plugins/nodeports"
	"github.com/berth-project/berth/internal/scheduler/plugins/noderesources"
	"github.com/berth-project/berth/internal/scheduler/plugins/nodeunschedulable"
	"github.com/berth-project/berth/internal/scheduler/plugins/podtopologyspread"
	"github.com/berth-project/berth/internal/scheduler/plugins/tainttoleration"
)

// Default is upstream's default profile, in its filter order and with its score
// weights (the volume plugins and image locality aside).
func Default() []framework.Entry {
	return []framework.Entry{
		{Plugin: nodeunschedulable.NodeUnschedulable{}},
		{Plugin: nodename.NodeName{}},
		{Plugin: &tainttoleration.TaintToleration{}, Weight: 3},
		{Plugin: nodeaffinity.NodeAffinity{}, Weight: 2},
		{Plugin: nodeports.NodePorts{}},
		{Plugin: noderesources.Fit{}, Weight: 1},
		{Plugin: podtopologyspread.PodTopologySpread{}, Weight: 2},
		{Plugin: interpodaffinity.InterPodAffinity{}, Weight: 2},
		{Plugin: noderesources.BalancedAllocation{}, Weight: 1},
	}
}
