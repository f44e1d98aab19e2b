package engine

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"

	"github.com/berth-project/berth/internal/engine/errdefs"
	"github.com/berth-project/berth/internal/engine/network"
	"github.com/berth-project/berth/internal/engine/sandbox"
)

// The pod network is the node's: one bridge (Config.PodBridge) on the node's pod CIDR.
// The CIDR comes from --pod-cidr or, on a cluster node, from the kubelet (the node's
// spec.podCIDR, through the CRI's UpdateRuntimeConfig); it is kept in DATA/network/pod.json
// so that a restarted engine brings the same network back before any kubelet speaks.

type podNetState struct {
	CIDR string `json:"cidr"`
}

func (e *Engine) podNetFile() string { return filepath.Join(e.cfg.DataDir, "network", "pod.json") }

// openPodNet sets up the pod network at start, if its CIDR is known.
func (e *Engine) openPodNet() error {
	cidr := e.cfg.PodCIDR
	if cidr == "" {
		var st podNetState
		if data, err := os.ReadFile(e.podNetFile()); err == nil && json.Unmarshal(data, &st) == nil {
			cidr = st.CIDR
		}
	}
	if cidr == "" {
		return nil
	}
	return e.setPodCIDR(cidr)
}

// SetPodCIDR sets the node's pod CIDR (the kubelet's UpdateRuntimeConfig). The same CIDR
// again changes nothing; another one replaces the pod network, which only an engine
// without running pods on it may do.
func (e *Engine) SetPodCIDR(cidr string) error {
	_, n, err := net.ParseCIDR(cidr)
	if err != nil || n.IP.To4() == nil {
		return errdefs.Invalid(fmt.Sprintf("pod CIDR %q: want an IPv4 CIDR", cidr))
	}
	return e.setPodCIDR(n.String())
}

func (e *Engine) setPodCIDR(cidr string) error {
	e.podMu.Lock()
	defer e.podMu.Unlock()
	if e.podNet != nil {
		if e.podNet.Subnet() == cidr {
			return nil
		}
		for _, sb := range e.sandboxes.List() {
			if sb.State == sandbox.Ready && !sb.HostNetwork() {
				return errdefs.Conflict(fmt.Sprintf("cannot change the pod CIDR from %s to %s: pod sandbox %s is on it", e.podNet.Subnet(), cidr, sb.ID[:12]))
			}
		}
		e.podNet.Down()
		os.RemoveAll(e.podNetStateDir())
		e.podNet = nil
	}
	var noMasq []string
	if e.cfg.ClusterCIDR != "" {
		noMasq = []string{e.cfg.ClusterCIDR}
	}
	m, err := network.New(network.Config{Bridge: e.cfg.PodBridge, CIDR: cidr, StateDir: e.podNetStateDir(), NoMasquerade: noMasq, Shortcut: e.shortcut})
	if err != nil {
		return fmt.Errorf("pod network: %w", err)
	}
	if err := m.Restore(nil); err != nil { // outbound NAT and forwarding, before any pod
		m.Down()
		return fmt.Errorf("pod network: %w", err)
	}
	data, _ := json.Marshal(podNetState{CIDR: cidr})
	if err := os.MkdirAll(filepath.Dir(e.podNetFile()), 0o700); err != nil {
		return err
	}
	if err := os.WriteFile(e.podNetFile(), data, 0o600); err != nil {
		return err
	}
	e.podNet = m
	e.log.Info("pod network ready", "bridge", e.cfg.PodBridge, "cidr", cidr)
	return nil
}

func (e *Engine) podNetStateDir() string { return filepath.Join(e.cfg.RunDir, "network", "pod") }

// PodNetwork describes the node's pod network; ready is false until its CIDR is known.
type PodNetwork struct {
	Bridge, CIDR, Gateway string
	Ready                 bool
}

// PodNetwork reports the pod network's state.
func (e *Engine) PodNetwork() PodNetwork {
	e.podMu.Lock()
	defer e.podMu.Unlock()
	pn := PodNetwork{Bridge: e.cfg.PodBridge}
	if e.podNet != nil {
		pn.CIDR, pn.Gateway, pn.Ready = e.podNet.Subnet(), e.podNet.Gateway(), true
	}
	return pn
}

func (e *Engine) podNetwork() *network.Manager {
	e.podMu.Lock()
	defer e.podMu.Unlock()
	return e.podNet
}
