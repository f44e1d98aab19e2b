package e2e

import (
	"encoding/json"
	"io"
	"strconv"
	"strings"
	"testing"
)

// TestVersionPing: the raw API answers /_ping (GET and HEAD) and /version, with and without a
// version prefix, the way clients negotiate.
func TestVersionPing(t *testing.T) {
	e := needEngine(t)
	c := e.httpClient()

	resp, err := c.Get("http://docker/_ping")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || strings.TrimSpace(string(body)) != "OK" {
		t.Fatalf("GET /_ping: %d %q, want 200 OK", resp.StatusCode, body)
	}
	apiVersion := resp.Header.Get("Api-Version")
	if apiVersion == "" {
		t.Fatalf("GET /_ping: no API-Version header (headers %v)", resp.Header)
	}

	resp, err = c.Head("http://docker/_ping")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("HEAD /_ping: %d, want 200", resp.StatusCode)
	}

	for _, path := range []string{"/version", "/v" + apiVersion + "/version", "/v1.41/version"} {
		resp, err := c.Get("http://docker" + path)
		if err != nil {
			t.Fatal(err)
		}
		var v struct {
			Version    string
			ApiVersion string
			Os         string
			Arch       string
		}
		err = json.NewDecoder(resp.Body).Decode(&v)
		resp.Body.Close()
		if resp.StatusCode != 200 || err != nil {
			t.Fatalf("GET %s: %d, decode: %v", path, resp.StatusCode, err)
		}
		if v.Version == "" || v.ApiVersion != apiVersion || v.Os != "linux" || v.Arch == "" {
			t.Fatalf("GET %s: %+v (API-Version header was %s)", path, v, apiVersion)
		}
	}
}

// TestVersionNegotiation: the CLI (API 1.50) agrees a version with the engine and says so.
func TestVersionNegotiation(t *testing.T) {
	e := needEngine(t)
	out := e.ok(t, "version")
	mustContain(t, "docker version", out, "Server:")

	server := e.ok(t, "version", "--format", "{{.Server.APIVersion}}")
	client := e.ok(t, "version", "--format", "{{.Client.APIVersion}}")
	minServer := e.ok(t, "version", "--format", "{{.Server.MinAPIVersion}}")
	if versionLess(server, "1.40") {
		t.Fatalf("server API version %q: want at least 1.40", server)
	}
	want := server
	if versionLess("1.50", server) {
		want = "1.50"
	}
	mustEqual(t, "negotiated client API version", client, want)
	if minServer == "" || versionLess(server, minServer) {
		t.Fatalf("server MinAPIVersion %q vs APIVersion %q", minServer, server)
	}
	if v := e.ok(t, "version", "--format", "{{.Server.Os}}/{{.Server.Arch}}"); !strings.HasPrefix(v, "linux/") {
		t.Fatalf("server os/arch %q", v)
	}
}

// versionLess compares "1.41"-style versions.
func versionLess(a, b string) bool {
	pa, pb := strings.Split(a, "."), strings.Split(b, ".")
	for i := 0; i < len(pa) || i < len(pb); i++ {
		var x, y int
		if i < len(pa) {
			x, _ = strconv.Atoi(pa[i])
		}
		if i < len(pb) {
			y, _ = strconv.Atoi(pb[i])
		}
		if x != y {
			return x < y
		}
	}
	return false
}

// TestVersionInfo: docker info works and its counts follow what exists.
func TestVersionInfo(t *testing.T) {
	e := needEngine(t)
	mustContain(t, "docker info", e.ok(t, "info"), "Server Version")

	name := uniq("info")
	e.sleeper(t, name)
	var info struct {
		ServerVersion     string
		OSType            string
		Containers        int
		ContainersRunning int
		Images            int
		NCPU              int
		MemTotal          int64
	}
	raw := e.ok(t, "info", "--format", "{{json .}}")
	if err := json.Unmarshal([]byte(raw), &info); err != nil {
		t.Fatalf("info --format '{{json .}}' is not JSON: %v\n%s", err, clip(raw))
	}
	if info.ServerVersion == "" || info.OSType != "linux" {
		t.Fatalf("info: ServerVersion %q OSType %q", info.ServerVersion, info.OSType)
	}
	if info.Containers < 1 || info.ContainersRunning < 1 || info.Images < 1 {
		t.Fatalf("info counts with a running container and an image: %+v", info)
	}
	if info.NCPU < 1 || info.MemTotal <= 0 {
		t.Fatalf("info: NCPU %d MemTotal %d", info.NCPU, info.MemTotal)
	}
}

// TestSystemDf: docker system df lists images, containers and volumes with their counts.
func TestSystemDf(t *testing.T) {
	e := needEngine(t)
	name := uniq("df")
	vol := uniq("dfvol")
	e.volumeRmOnCleanup(t, vol)
	e.sleeper(t, name, "-v", vol+":/data")

	out := e.ok(t, "system", "df")
	for _, row := range []string{"TYPE", "Images", "Containers", "Local Volumes"} {
		mustContain(t, "system df", out, row)
	}
	counts := map[string][2]int{}
	for _, l := range lines(e.ok(t, "system", "df", "--format", "{{.Type}}|{{.TotalCount}}|{{.Active}}")) {
		f := strings.Split(l, "|")
		if len(f) != 3 {
			t.Fatalf("system df --format: odd line %q", l)
		}
		total, _ := strconv.Atoi(f[1])
		active, _ := strconv.Atoi(f[2])
		counts[f[0]] = [2]int{total, active}
	}
	for _, typ := range []string{"Images", "Containers", "Local Volumes"} {
		c, found := counts[typ]
		if !found || c[0] < 1 || c[1] < 1 {
			t.Fatalf("system df: %s total/active = %v, want both >= 1 (all: %v)", typ, c, counts)
		}
	}
	verbose := e.ok(t, "system", "df", "-v")
	mustContain(t, "system df -v lists the container", verbose, name)
	mustContain(t, "system df -v lists the volume", verbose, vol)
}
