package framework

import (
	"slices"
	"strings"
)

// Snapshot is the cluster as one scheduling cycle sees it: every node with its pods.
// The scheduler brings it up to date between cycles (copying only the nodes that
// changed) and nothing changes it during a cycle, so plugins read it without locks.
type Snapshot struct {
	byName map[string]*NodeInfo
	list   []*NodeInfo
	// withAffinity and withRequiredAntiAffinity are the nodes that have pods with
	// (anti-)affinity terms, so plugins need not walk every node to find them.
	withAffinity             []*NodeInfo
	withRequiredAntiAffinity []*NodeInfo
	generation               int64
	dirty                    bool // the lists need rebuilding
}

// NewSnapshot returns a snapshot of the given nodes (tests build clusters this way).
func NewSnapshot(nodes ...*NodeInfo) *Snapshot {
	s := &Snapshot{byName: map[string]*NodeInfo{}}
	for _, n := range nodes {
		s.Put(n)
	}
	s.Commit(0)
	return s
}

// List is every node, in a stable order.
func (s *Snapshot) List() []*NodeInfo { return s.list }

// WithAffinity is the nodes with pods that have pod (anti-)affinity terms.
func (s *Snapshot) WithAffinity() []*NodeInfo { return s.withAffinity }

// WithRequiredAntiAffinity is the nodes with pods that have required anti-affinity terms.
func (s *Snapshot) WithRequiredAntiAffinity() []*NodeInfo { return s.withRequiredAntiAffinity }

// Get returns the named node, or nil.
func (s *Snapshot) Get(name string) *NodeInfo { return s.byName[name] }

// Len is the number of nodes.
func (s *Snapshot) Len() int { return len(s.byName) }

// Generation is the cache generation the snapshot reflects.
func (s *Snapshot) Generation() int64 { return s.generation }

// Put adds a node or replaces its info. An existing NodeInfo is overwritten in place,
// so the lists that point at it stay valid; info must not be changed afterwards.
func (s *Snapshot) Put(info *NodeInfo) {
	name := info.Name()
	cur, ok := s.byName[name]
	if !ok {
		s.byName[name] = info
		s.dirty = true
		return
	}
	if (len(cur.PodsWithAffinity) > 0) != (len(info.PodsWithAffinity) > 0) ||
		(len(cur.PodsWithRequiredAntiAffinity) > 0) != (len(info.PodsWithRequiredAntiAffinity) > 0) ||
		zoneOf(cur) != zoneOf(info) {
		s.dirty = true
	}
	*cur = *info
}

// Delete removes a node.
func (s *Snapshot) Delete(name string) {
	if _, ok := s.byName[name]; ok {
		delete(s.byName, name)
		s.dirty = true
	}
}

// Names calls fn for each node's name.
func (s *Snapshot) Names(fn func(name string)) {
	for name := range s.byName {
		fn(name)
	}
}

// Commit records the generation the snapshot now reflects and rebuilds the lists if
// nodes came, went or changed membership.
func (s *Snapshot) Commit(generation int64) {
	s.generation = generation
	if !s.dirty {
		return
	}
	s.dirty = false
	s.list = s.list[:0]
	s.withAffinity = s.withAffinity[:0]
	s.withRequiredAntiAffinity = s.withRequiredAntiAffinity[:0]
	for _, n := range s.byName {
		s.list = append(s.list, n)
	}
	s.list = interleaveZones(s.list)
	for _, n := range s.list {
		if len(n.PodsWithAffinity) > 0 {
			s.withAffinity = append(s.withAffinity, n)
		}
		if len(n.PodsWithRequiredAntiAffinity) > 0 {
			s.withRequiredAntiAffinity = append(s.withRequiredAntiAffinity, n)
		}
	}
}

// ZoneLabel is the well-known node label of the zone a node is in.
const ZoneLabel = "topology.kubernetes.io/zone"

func zoneOf(n *NodeInfo) string {
	if n.node == nil {
		return ""
	}
	return n.node.Labels[ZoneLabel]
}

// interleaveZones orders nodes by name within each zone and then takes one from each
// zone in turn (as upstream's node tree does), so that scoring only some of the
// nodes still sees every zone.
func interleaveZones(nodes []*NodeInfo) []*NodeInfo {
	slices.SortFunc(nodes, func(a, b *NodeInfo) int {
		if c := strings.Compare(zoneOf(a), zoneOf(b)); c != 0 {
			return c
		}
		return strings.Compare(a.Name(), b.Name())
	})
	var zones [][]*NodeInfo
	for i := 0; i < len(nodes); {
		j := i
		for j < len(nodes) && zoneOf(nodes[j]) == zoneOf(nodes[i]) {
			j++
		}
		zones = append(zones, nodes[i:j])
		i = j
	}
	if len(zones) <= 1 {
		return nodes
	}
	out := make([]*NodeInfo, 0, len(nodes))
	for len(out) < len(nodes) {
		for z := range zones {
			if len(zones[z]) > 0 {
				out = append(out, zones[z][0])
				zones[z] = zones[z][1:]
			}
		}
	}
	return out
}
