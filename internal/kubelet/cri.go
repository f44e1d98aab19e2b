package kubelet

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// dialCRI opens a gRPC connection to a CRI socket given as a path or unix:///path. The
// connection is lazy: the first call fails if nothing listens yet.
func dialCRI(endpoint string) (*grpc.ClientConn, error) {
	path := strings.TrimPrefix(endpoint, "unix://")
	if path == "" || strings.Contains(path, "://") {
		return nil, fmt.Errorf("kubelet: CRI endpoint %q: want a unix socket path", endpoint)
	}
	conn, err := grpc.NewClient("passthrough:///"+path,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		}),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(16<<20)),
	)
	if err != nil {
		return nil, fmt.Errorf("kubelet: CRI endpoint %s: %w", endpoint, err)
	}
	return conn, nil
}

// defaultIP is the source address of the default route: the address other nodes reach us at.
func defaultIP() (net.IP, error) {
	// A UDP "connection" sends nothing; it only asks the kernel which source address it would use.
	c, err := net.Dial("udp4", "192.0.2.1:9")
	if err == nil {
		defer c.Close()
		return c.LocalAddr().(*net.UDPAddr).IP, nil
	}
	addrs, aerr := net.InterfaceAddrs()
	if aerr != nil {
		return nil, errors.Join(err, aerr)
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil && !n.IP.IsLoopback() {
			return n.IP, nil
		}
	}
	return net.IPv4(127, 0, 0, 1), nil
}
