// Package cri serves the Container Runtime Interface (k8s.io/cri-api, v1) from the
// engine, so a kubelet or crictl runs pods on it. It translates: CRI requests become
// engine calls (a pod sandbox is the engine's sandbox, a pod's container an engine
// container), engine errors become gRPC codes at the edge. It keeps no state.
package cri

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"time"

	"google.golang.org/grpc"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/cri-streaming/pkg/streaming"

	"github.com/berth-project/berth/internal/engine"
)

// Options configure a Server.
type Options struct {
	// StreamAddr is where exec, attach and port-forward streams are served (HTTP);
	// the URLs the CRI hands out point there. Default 127.0.0.1:0 (a free port): the
	// kubelet and crictl run on the same node.
	StreamAddr string
	// Version is Berth's version, reported as the runtime's.
	Version string
	Log     *slog.Logger
}

// Server is the CRI's RuntimeService and ImageService over one engine.
type Server struct {
	eng     *engine.Engine
	log     *slog.Logger
	version string
	grpc    *grpc.Server
	stream  streaming.Server
	http    *http.Server
	httpLn  net.Listener
}

// maxMessage is the largest gRPC message either way, as the kubelet's client allows.
const maxMessage = 16 << 20

// NewServer makes a CRI server for eng and starts its streaming server.
func NewServer(eng *engine.Engine, o Options) (*Server, error) {
	if o.Log == nil {
		o.Log = slog.Default()
	}
	if o.StreamAddr == "" {
		o.StreamAddr = "127.0.0.1:0"
	}
	s := &Server{eng: eng, log: o.Log, version: o.Version}
	// Listen first, so the URLs carry the port actually bound.
	ln, err := net.Listen("tcp", o.StreamAddr)
	if err != nil {
		return nil, fmt.Errorf("streaming server: %w", err)
	}
	cfg := streaming.DefaultConfig
	cfg.Addr = ln.Addr().String()
	cfg.BaseURL = &url.URL{Scheme: "http", Host: ln.Addr().String()}
	if s.stream, err = streaming.NewServer(cfg, streamRuntime{eng: eng}); err != nil {
		ln.Close()
		return nil, err
	}
	s.httpLn = ln
	s.http = &http.Server{Handler: s.stream, ReadHeaderTimeout: 30 * time.Second}
	go s.http.Serve(ln)
	s.grpc = grpc.NewServer(grpc.MaxRecvMsgSize(maxMessage), grpc.MaxSendMsgSize(maxMessage),
		grpc.ChainUnaryInterceptor(s.unaryEdge), grpc.ChainStreamInterceptor(s.streamEdge))
	runtimeapi.RegisterRuntimeServiceServer(s.grpc, &runtimeService{Server: s})
	runtimeapi.RegisterImageServiceServer(s.grpc, &imageService{Server: s})
	return s, nil
}

// StreamURL is the base URL of the streaming server.
func (s *Server) StreamURL() string { return "http://" + s.httpLn.Addr().String() }

// Serve answers CRI requests on ln (the engine's unix socket) until Stop.
func (s *Server) Serve(ln net.Listener) error { return s.grpc.Serve(ln) }

// Stop ends the server: open calls and streams are cut.
func (s *Server) Stop() {
	s.grpc.Stop()
	s.http.Close()
}

// unaryEdge converts engine errors to gRPC status codes, and logs failures.
func (s *Server) unaryEdge(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	t0 := time.Now()
	resp, err := handler(ctx, req)
	if err != nil {
		s.log.Debug("cri call failed", "method", info.FullMethod, "err", err, "took", time.Since(t0))
		return resp, toStatus(err)
	}
	s.log.Debug("cri call", "method", info.FullMethod, "took", time.Since(t0))
	return resp, nil
}

func (s *Server) streamEdge(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	if err := handler(srv, ss); err != nil {
		return toStatus(err)
	}
	return nil
}

// runtimeService is the CRI RuntimeService; calls the CRI has and Berth does not
// (checkpoints, metrics, container events) answer Unimplemented.
type runtimeService struct {
	*Server
	runtimeapi.UnimplementedRuntimeServiceServer
}

// imageService is the CRI ImageService.
type imageService struct {
	*Server
	runtimeapi.UnimplementedImageServiceServer
}
