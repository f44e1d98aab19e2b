package engine

import (
	"net/netip"
	"reflect"
	"strings"
	"testing"

	dockerspec "github.com/moby/docker-image-spec/specs-go/v1"
	dcontainer "github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"

	"github.com/berth-project/berth/internal/engine/container"
	"github.com/berth-project/berth/internal/engine/image"
)

func TestParseBind(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want container.Mount
		bad  bool
	}{
		{in: "/host:/ctr", want: container.Mount{Type: "bind", Source: "/host", Destination: "/ctr", RW: true}},
		{in: "/host:/ctr:ro", want: container.Mount{Type: "bind", Source: "/host", Destination: "/ctr", Mode: "ro"}},
		{in: "vol:/data", want: container.Mount{Type: "volume", Name: "vol", Destination: "/data", RW: true}},
		{in: "vol:/data:nocopy", want: container.Mount{Type: "volume", Name: "vol", Destination: "/data", RW: true, Mode: "nocopy", NoCopy: true}},
		{in: "/anon", want: container.Mount{Type: "volume", Destination: "/anon", RW: true, Anonymous: true}},
		{in: "/a:/b:xx", bad: true},
		{in: ":/b", bad: true},
		{in: "a:b:c:d", bad: true},
	} {
		got, err := parseBind(tc.in)
		if tc.bad {
			if err == nil {
				t.Errorf("parseBind(%q) = %+v, want an error", tc.in, got)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("parseBind(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
	}
}

func TestApplyChangesAsDockerImportDoes(t *testing.T) {
	var c dockerspec.DockerOCIImageConfig
	err := applyChanges(&c, []string{
		`CMD ["/bin/sh"]`, `ENTRYPOINT echo hi`, `ENV A=1 B="two words"`, `ENV A 3`,
		`LABEL x=y`, `EXPOSE 80 53/udp`, `USER nobody`, `WORKDIR /www`, `VOLUME ["/data"]`,
	})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(c.Cmd, []string{"/bin/sh"}) || !reflect.DeepEqual(c.Entrypoint, []string{"/bin/sh", "-c", "echo hi"}) {
		t.Errorf("cmd %q entrypoint %q", c.Cmd, c.Entrypoint)
	}
	if !reflect.DeepEqual(c.Env, []string{"A=3", "B=two words"}) {
		t.Errorf("env %q", c.Env)
	}
	if _, ok := c.ExposedPorts["53/udp"]; !ok || len(c.ExposedPorts) != 2 {
		t.Errorf("exposed %v", c.ExposedPorts)
	}
	if c.User != "nobody" || c.WorkingDir != "/www" || c.Labels["x"] != "y" {
		t.Errorf("user %q workdir %q labels %v", c.User, c.WorkingDir, c.Labels)
	}
	if _, ok := c.Volumes["/data"]; !ok {
		t.Errorf("volumes %v", c.Volumes)
	}
	if err := applyChanges(&c, []string{"FROB x"}); err == nil {
		t.Error("an unknown instruction was accepted")
	}
}

func TestMergeImageConfig(t *testing.T) {
	img := &image.Image{}
	img.Config.Config.Env = []string{"PATH=/bin", "A=image"}
	img.Config.Config.Cmd = []string{"/bin/sh"}
	img.Config.Config.Entrypoint = []string{"/entry"}
	img.Config.Config.WorkingDir = "/w"

	cfg := &dcontainer.Config{Env: []string{"A=user", "B=2"}}
	mergeImageConfig(cfg, img)
	if !reflect.DeepEqual(cfg.Env, []string{"PATH=/bin", "A=user", "B=2"}) {
		t.Errorf("env %q", cfg.Env)
	}
	if !reflect.DeepEqual(cfg.Entrypoint, []string{"/entry"}) || !reflect.DeepEqual(cfg.Cmd, []string{"/bin/sh"}) || cfg.WorkingDir != "/w" {
		t.Errorf("entrypoint %q cmd %q workdir %q", cfg.Entrypoint, cfg.Cmd, cfg.WorkingDir)
	}

	// --entrypoint given: the image's CMD is not used (Docker's rule).
	cfg = &dcontainer.Config{Entrypoint: []string{"/other"}}
	mergeImageConfig(cfg, img)
	if len(cfg.Cmd) != 0 {
		t.Errorf("with --entrypoint the image's CMD leaked in: %q", cfg.Cmd)
	}
	// --entrypoint "" resets it and takes the image's CMD.
	cfg = &dcontainer.Config{Entrypoint: []string{}}
	mergeImageConfig(cfg, img)
	if len(cfg.Entrypoint) != 0 || !reflect.DeepEqual(cfg.Cmd, []string{"/bin/sh"}) {
		t.Errorf("entrypoint %q cmd %q", cfg.Entrypoint, cfg.Cmd)
	}
}

func TestWantedPorts(t *testing.T) {
	p80 := network.MustParsePort("80/tcp")
	p53 := network.MustParsePort("53/udp")
	p90 := network.MustParsePort("90/tcp")
	cfg := &dcontainer.Config{ExposedPorts: network.PortSet{p80: {}, p90: {}}}
	hc := &dcontainer.HostConfig{
		PortBindings: network.PortMap{
			p80: {{HostPort: "8080"}},
			p53: {{HostIP: netip.MustParseAddr("127.0.0.1"), HostPort: "5353"}},
		},
		PublishAllPorts: true,
	}
	got, err := wantedPorts(cfg, hc, "10.0.0.2")
	if err != nil {
		t.Fatal(err)
	}
	var s []string
	for _, m := range got {
		s = append(s, m.Proto+":"+m.HostIP+":"+itoa(int(m.HostPort))+"->"+m.CtrIP+":"+itoa(int(m.CtrPort)))
	}
	want := "udp:127.0.0.1:5353->10.0.0.2:53 tcp::8080->10.0.0.2:80 tcp::0->10.0.0.2:90"
	if strings.Join(s, " ") != want {
		t.Errorf("mappings\n got %s\nwant %s", strings.Join(s, " "), want)
	}
	hc.PortBindings = network.PortMap{p80: {{HostPort: "x"}}}
	if _, err := wantedPorts(cfg, hc, "10.0.0.2"); err == nil {
		t.Error("a non-numeric host port was accepted")
	}
}

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	var b []byte
	for ; n > 0; n /= 10 {
		b = append([]byte{byte('0' + n%10)}, b...)
	}
	return string(b)
}

func TestProcessEnvDefaults(t *testing.T) {
	got := processEnv([]string{"A=1"}, "host1", "/root", true)
	want := []string{defaultPath, "HOSTNAME=host1", "TERM=xterm", "A=1", "HOME=/root"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %q\nwant %q", got, want)
	}
	got = processEnv([]string{"PATH=/x", "HOME=/h"}, "", "/root", false)
	if !reflect.DeepEqual(got, []string{"PATH=/x", "HOME=/h"}) {
		t.Errorf("user values were overridden: %q", got)
	}
}

func TestResolvConfForUserNetworksPointsAtTheEmbeddedServer(t *testing.T) {
	out := resolvConf(false, true, nil, []string{"corp"}, nil)
	if !strings.Contains(out, "nameserver 127.0.0.11\n") || !strings.Contains(out, "options ndots:0") || !strings.Contains(out, "search corp") {
		t.Errorf("resolv.conf:\n%s", out)
	}
	out = resolvConf(false, false, []netip.Addr{netip.MustParseAddr("9.9.9.9")}, nil, nil)
	if !strings.HasPrefix(out, "nameserver 9.9.9.9\n") || strings.Contains(out, "127.0.0.11") {
		t.Errorf("--dns on the default bridge:\n%s", out)
	}
}

func TestStartFailureCode(t *testing.T) {
	for msg, want := range map[string]int{
		`exec: "/no/such": stat /no/such: no such file or directory`: 127,
		`exec: "x": executable file not found in $PATH`:              127,
		`exec: "/etc": permission denied`:                            126,
		`unable to find user bob`:                                    128,
	} {
		if got := startFailureCode(msg); got != want {
			t.Errorf("startFailureCode(%q) = %d, want %d", msg, got, want)
		}
	}
}
