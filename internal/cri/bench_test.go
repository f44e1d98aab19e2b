package cri

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-project/berth/internal/engine"
)

// BenchmarkPodStartup measures what the kubelet waits for when a pod starts, through
// the CRI over its unix socket: RunPodSandbox + CreateContainer + StartContainer of a
// busybox container. It reports the median and the 90th percentile besides the mean.
// It needs root, bin/berth-runtime and bin/berth-shim (make build) and /bin/busybox.
//
//	go test -run '^$' -bench PodStartup -benchtime 50x ./internal/cri/
func BenchmarkPodStartup(b *testing.B) {
	rt, _ := filepath.Abs("../../bin/berth-runtime")
	switch {
	case os.Geteuid() != 0:
		b.Skip("needs root (namespaces, a bridge)")
	case !exists(rt) || !exists(filepath.Join(filepath.Dir(rt), "berth-shim")):
		b.Skip("needs bin/berth-runtime and bin/berth-shim: run make build")
	case !exists("/bin/busybox"):
		b.Skip("needs a static /bin/busybox (busybox-static)")
	}
	ctx := context.Background()
	dir := b.TempDir()
	eng, err := engine.New(ctx, engine.Config{
		DataDir: filepath.Join(dir, "data"), RunDir: filepath.Join(dir, "run"), RuntimePath: rt,
		Bridge: "tcrib0", BridgeCIDR: "10.233.0.0/24", PodBridge: "tcribpod0", PodCIDR: "10.234.0.0/22",
		CgroupParent: "tcri-bench", Logger: benchLogger(),
	})
	if err != nil {
		b.Fatal(err)
	}
	img, err := busyboxImage()
	if err != nil {
		b.Fatal(err)
	}
	if _, err := eng.Import(ctx, bytes.NewReader(img), engine.ImportOptions{Ref: "bb:1.0", Source: "-"}); err != nil {
		b.Fatal(err)
	}
	srv, err := NewServer(eng, Options{})
	if err != nil {
		b.Fatal(err)
	}
	sock := filepath.Join(dir, "run", "cri.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		b.Fatal(err)
	}
	go srv.Serve(ln)
	conn, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		b.Fatal(err)
	}
	rs := runtimeapi.NewRuntimeServiceClient(conn)
	b.Cleanup(func() {
		pods, _ := rs.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{})
		for _, p := range pods.GetItems() {
			rs.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: p.Id})
		}
		conn.Close()
		srv.Stop()
		eng.Close()
		exec.Command("ip", "link", "del", "tcribpod0").Run()
		exec.Command("ip", "link", "del", "tcrib0").Run()
	})

	var took, runp, create, start []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		sbCfg := &runtimeapi.PodSandboxConfig{
			Metadata:     &runtimeapi.PodSandboxMetadata{Name: fmt.Sprintf("bench-%d", i), Namespace: "bench", Uid: fmt.Sprintf("uid-%d", i)},
			Hostname:     "bench",
			LogDirectory: filepath.Join(dir, "pods", fmt.Sprint(i)),
			Linux:        &runtimeapi.LinuxPodSandboxConfig{},
		}
		sb, err := rs.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: sbCfg})
		if err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		ctr, err := rs.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{PodSandboxId: sb.PodSandboxId, SandboxConfig: sbCfg,
			Config: &runtimeapi.ContainerConfig{
				Metadata: &runtimeapi.ContainerMetadata{Name: "sleep"}, Image: &runtimeapi.ImageSpec{Image: "bb:1.0"},
				Command: []string{"sleep", "3600"}, LogPath: "sleep/0.log", Linux: &runtimeapi.LinuxContainerConfig{},
			}})
		if err != nil {
			b.Fatal(err)
		}
		t2 := time.Now()
		if _, err := rs.StartContainer(ctx, &runtimeapi.StartContainerRequest{ContainerId: ctr.ContainerId}); err != nil {
			b.Fatal(err)
		}
		t3 := time.Now()
		took, runp = append(took, t3.Sub(t0)), append(runp, t1.Sub(t0))
		create, start = append(create, t2.Sub(t1)), append(start, t3.Sub(t2))
		b.StopTimer()
		if _, err := rs.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: sb.PodSandboxId}); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	b.StopTimer()
	b.ReportMetric(quantile(took, 0.5), "p50-ms")
	b.ReportMetric(quantile(took, 0.9), "p90-ms")
	b.ReportMetric(quantile(runp, 0.5), "runp-p50-ms")
	b.ReportMetric(quantile(create, 0.5), "create-p50-ms")
	b.ReportMetric(quantile(start, 0.5), "start-p50-ms")
}

// quantile is the q-quantile of ds in milliseconds.
func quantile(ds []time.Duration, q float64) float64 {
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return float64(s[int(float64(len(s)-1)*q)].Microseconds()) / 1000
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// busyboxImage is a rootfs tar with /bin/busybox and the applets the benchmark runs.
func busyboxImage() ([]byte, error) {
	bin, err := os.ReadFile("/bin/busybox")
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, d := range []string{"bin/", "etc/", "tmp/", "proc/", "sys/", "dev/"} {
		tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d, Mode: 0o755})
	}
	tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "bin/busybox", Mode: 0o755, Size: int64(len(bin))})
	tw.Write(bin)
	for _, a := range []string{"sh", "sleep"} {
		tw.WriteHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: "bin/" + a, Linkname: "busybox", Mode: 0o777})
	}
	passwd := []byte("root:x:0:0:root:/root:/bin/sh\n")
	tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "etc/passwd", Mode: 0o644, Size: int64(len(passwd))})
	tw.Write(passwd)
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// benchLogger is quiet unless BERTH_DEBUG is set (then the engine's per-start timings show).
func benchLogger() *slog.Logger {
	level := slog.LevelWarn
	if os.Getenv("BERTH_DEBUG") != "" {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
}
