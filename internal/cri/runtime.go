package cri

import (
	"context"
	"encoding/json"
	"net"
	"strings"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// runtimeName is how the kubelet and crictl see the runtime.
const runtimeName = "berth"

func (s *runtimeService) Version(ctx context.Context, req *runtimeapi.VersionRequest) (*runtimeapi.VersionResponse, error) {
	return &runtimeapi.VersionResponse{Version: "0.1.0", RuntimeName: runtimeName, RuntimeVersion: s.version, RuntimeApiVersion: "v1"}, nil
}

// Status reports the runtime ready, and the network ready once the pod CIDR is known.
func (s *runtimeService) Status(ctx context.Context, req *runtimeapi.StatusRequest) (*runtimeapi.StatusResponse, error) {
	pn := s.eng.PodNetwork()
	netCond := &runtimeapi.RuntimeCondition{Type: runtimeapi.NetworkReady, Status: pn.Ready}
	if !pn.Ready {
		netCond.Reason = "NetworkPluginNotReady"
		netCond.Message = "the pod network has no CIDR yet: start the engine with --pod-cidr, or let the kubelet set the node's"
	}
	resp := &runtimeapi.StatusResponse{
		Status: &runtimeapi.RuntimeStatus{Conditions: []*runtimeapi.RuntimeCondition{
			{Type: runtimeapi.RuntimeReady, Status: true}, netCond,
		}},
		RuntimeHandlers: []*runtimeapi.RuntimeHandler{{Name: "", Features: &runtimeapi.RuntimeHandlerFeatures{}}},
		Features:        &runtimeapi.RuntimeFeatures{},
	}
	if req.Verbose {
		info, _ := json.Marshal(map[string]string{"bridge": pn.Bridge, "cidr": pn.CIDR, "gateway": pn.Gateway})
		resp.Info = map[string]string{"podNetwork": string(info)}
	}
	return resp, nil
}

// UpdateRuntimeConfig takes the node's pod CIDR from the kubelet ("v4[,v6]": the IPv4 one).
func (s *runtimeService) UpdateRuntimeConfig(ctx context.Context, req *runtimeapi.UpdateRuntimeConfigRequest) (*runtimeapi.UpdateRuntimeConfigResponse, error) {
	nc := req.GetRuntimeConfig().GetNetworkConfig()
	if nc == nil || nc.PodCidr == "" {
		return &runtimeapi.UpdateRuntimeConfigResponse{}, nil
	}
	v4 := ipv4CIDR(nc.PodCidr)
	if v4 == "" {
		return nil, invalid("pod CIDR " + nc.PodCidr + ": no IPv4 CIDR in it")
	}
	if err := s.eng.SetPodCIDR(v4); err != nil {
		return nil, err
	}
	return &runtimeapi.UpdateRuntimeConfigResponse{}, nil
}

// ipv4CIDR picks the IPv4 CIDR out of the kubelet's "v4[,v6]" list; "" if there is none.
func ipv4CIDR(list string) string {
	for _, c := range strings.Split(list, ",") {
		c = strings.TrimSpace(c)
		if ip, _, err := net.ParseCIDR(c); err == nil && ip.To4() != nil {
			return c
		}
	}
	return ""
}

// RuntimeConfig tells the kubelet which cgroup driver to use: cgroupfs.
func (s *runtimeService) RuntimeConfig(ctx context.Context, req *runtimeapi.RuntimeConfigRequest) (*runtimeapi.RuntimeConfigResponse, error) {
	return &runtimeapi.RuntimeConfigResponse{Linux: &runtimeapi.LinuxRuntimeConfiguration{CgroupDriver: runtimeapi.CgroupDriver_CGROUPFS}}, nil
}
