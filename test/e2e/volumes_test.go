package e2e

import (
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"
)

// volumeMountpoint checks that the volume's mountpoint is <data dir>/volumes/NAME/_data (and
// exists on the host) and returns it.
func (e *engine) volumeMountpoint(t *testing.T, name string) string {
	t.Helper()
	mp := e.ok(t, "volume", "inspect", "-f", "{{.Mountpoint}}", name)
	if !strings.HasSuffix(mp, "/volumes/"+name+"/_data") || !strings.HasPrefix(mp, e.dataDir+"/") {
		t.Fatalf("volume %s mountpoint %q: want %s/.../volumes/%s/_data", name, mp, e.dataDir, name)
	}
	if st, err := os.Stat(mp); err != nil || !st.IsDir() {
		t.Fatalf("volume mountpoint %s is not a directory on the host: %v", mp, err)
	}
	return mp
}

func (e *engine) volumeNames(t *testing.T, args ...string) []string {
	t.Helper()
	l := e.docker(t, append([]string{"volume", "ls", "-q"}, args...)...).Lines()
	sort.Strings(l)
	return l
}

// TestVolumesLifecycle: volume create, ls (with filters), inspect, rm, and rm of a volume in use.
func TestVolumesLifecycle(t *testing.T) {
	e := needEngine(t)
	name := uniq("vol")
	e.volumeRmOnCleanup(t, name)
	mustEqual(t, "volume create prints the name", e.ok(t, "volume", "create", "--label", "e2e.vol=yes", name), name)
	mustEqual(t, "volume create of an existing name is idempotent", e.ok(t, "volume", "create", name), name)

	if got := e.volumeNames(t); !contains(got, name) {
		t.Fatalf("volume ls -q lacks %s: %v", name, got)
	}
	mustContain(t, "volume ls table", e.ok(t, "volume", "ls"), "local")
	mustEqual(t, "volume ls -f name=", strings.Join(e.volumeNames(t, "-f", "name="+name), " "), name)
	if got := e.volumeNames(t, "-f", "label=e2e.vol=yes"); !contains(got, name) {
		t.Fatalf("volume ls -f label=e2e.vol=yes lacks %s: %v", name, got)
	}
	if got := e.volumeNames(t, "-f", "dangling=true"); !contains(got, name) {
		t.Fatalf("an unused volume is dangling: %v", got)
	}

	mustEqual(t, "volume inspect .Name", e.ok(t, "volume", "inspect", "-f", "{{.Name}}", name), name)
	mustEqual(t, "volume inspect .Driver", e.ok(t, "volume", "inspect", "-f", "{{.Driver}}", name), "local")
	mustEqual(t, "volume inspect label", e.ok(t, "volume", "inspect", "-f", `{{index .Labels "e2e.vol"}}`, name), "yes")
	mp := e.volumeMountpoint(t, name)

	// In use: rm refuses; the volume is not dangling.
	user := uniq("voluser")
	e.sleeper(t, user, "-v", name+":/data")
	if got := e.volumeNames(t, "-f", "dangling=true"); contains(got, name) {
		t.Fatalf("a volume in use is listed as dangling: %v", got)
	}
	r := e.fails(t, "volume", "rm", name)
	mustContain(t, "volume rm of a volume in use", strings.ToLower(r.Stderr), "in use")
	e.ok(t, "rm", "-f", user)

	mustEqual(t, "volume rm prints the name", e.ok(t, "volume", "rm", name), name)
	r = e.fails(t, "volume", "inspect", name)
	mustContain(t, "volume inspect after rm", strings.ToLower(r.Stderr), "no such volume")
	if _, err := os.Stat(mp); err == nil {
		t.Fatalf("the volume's data %s is still on the host after volume rm", mp)
	}

	anon := e.ok(t, "volume", "create")
	e.volumeRmOnCleanup(t, anon)
	if !hexID64.MatchString(anon) {
		t.Fatalf("volume create without a name printed %q, want a 64-hex name", anon)
	}
	e.ok(t, "volume", "rm", anon)
}

// TestVolumesPrune: volume prune removes unused anonymous volumes; -a also unused named ones;
// volumes in use survive both.
func TestVolumesPrune(t *testing.T) {
	e := needEngine(t)
	unused, used := uniq("prunused"), uniq("prused")
	e.volumeRmOnCleanup(t, unused, used)
	e.ok(t, "volume", "create", unused)
	e.sleeper(t, uniq("pruser"), "-v", used+":/data")

	// An anonymous volume left behind by a container removed without -v.
	holder := uniq("anonholder")
	e.rmOnCleanup(t, holder)
	e.ok(t, "create", "--name", holder, "-v", "/data", bbImage)
	anon := e.ok(t, "inspect", "-f", "{{range .Mounts}}{{.Name}}{{end}}", holder)
	if !hexID64.MatchString(anon) {
		t.Fatalf("anonymous volume name %q, want 64 hex", anon)
	}
	e.volumeRmOnCleanup(t, anon)
	e.ok(t, "rm", holder)

	out := e.ok(t, "volume", "prune", "-f")
	mustContain(t, "volume prune reports space", out, "Total reclaimed space")
	got := e.volumeNames(t)
	if contains(got, anon) || !contains(got, unused) || !contains(got, used) {
		t.Fatalf("after volume prune: %v; want %s gone, %s and %s kept", got, anon, unused, used)
	}
	e.ok(t, "volume", "prune", "-f", "-a")
	got = e.volumeNames(t)
	if contains(got, unused) || !contains(got, used) {
		t.Fatalf("after volume prune -a: %v; want %s gone and %s kept", got, unused, used)
	}
}

// TestVolumesCopyUp: an empty named volume gets the image's files at its mount path; host and
// container see the same files; data outlives the container; a non-empty volume is left alone.
func TestVolumesCopyUp(t *testing.T) {
	e := needEngine(t)
	vol := uniq("copyup")
	e.volumeRmOnCleanup(t, vol)
	e.ok(t, "volume", "create", vol)
	mp := e.volumeMountpoint(t, vol)

	user := uniq("cpuser")
	e.sleeper(t, user, "-v", vol+":/www")
	mustEqual(t, "the image's files are copied into the empty volume", e.ok(t, "exec", user, "cat", "/www/index.html"), "hello from busybox")
	if b, err := os.ReadFile(filepath.Join(mp, "index.html")); err != nil || string(b) != "hello from busybox\n" {
		t.Fatalf("the copied file is not in the mountpoint on the host: %q %v", b, err)
	}
	if err := os.WriteFile(filepath.Join(mp, "host.txt"), []byte("dropped on the host\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	mustEqual(t, "a file put in the mountpoint appears in the container", e.ok(t, "exec", user, "cat", "/www/host.txt"), "dropped on the host")
	e.ok(t, "exec", user, "sh", "-c", "echo from the container > /www/ctr.txt")
	if b, err := os.ReadFile(filepath.Join(mp, "ctr.txt")); err != nil || string(b) != "from the container\n" {
		t.Fatalf("a file written in the container is not in the mountpoint: %q %v", b, err)
	}
	e.ok(t, "rm", "-f", user)

	mustEqual(t, "the volume outlives its container", e.ok(t, "run", "--rm", "-v", vol+":/data", bbImage, "cat", "/data/host.txt"), "dropped on the host")
	out := lines(e.ok(t, "run", "--rm", "-v", vol+":/etc", bbImage, "ls", "/etc"))
	if contains(out, "passwd") || !contains(out, "index.html") {
		t.Fatalf("a non-empty volume mounted at /etc got the image's files: %v", out)
	}

	// Copy-up keeps modes: /tmp is 1777.
	tmpVol := uniq("copytmp")
	e.volumeRmOnCleanup(t, tmpVol)
	mustEqual(t, "copy-up keeps the directory mode", e.ok(t, "run", "--rm", "-v", tmpVol+":/tmp", bbImage, "stat", "-c", "%a", "/tmp"), "1777")
}

// TestVolumesBindMounts: -v /host:/ctr[:ro] and --mount (bind, volume, tmpfs).
func TestVolumesBindMounts(t *testing.T) {
	e := needEngine(t)
	host := t.TempDir()
	site := filepath.Join(host, "site")
	if err := os.MkdirAll(site, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(site, "index.html"), []byte("from host\n"), 0o644); err != nil {
		t.Fatal(err)
	}

	name := uniq("bind")
	e.sleeper(t, name, "-v", site+":/www", "-v", site+":/ro:ro")
	mustEqual(t, "bind mount shows the host's files", e.ok(t, "exec", name, "cat", "/www/index.html"), "from host")
	e.ok(t, "exec", name, "sh", "-c", "echo from container > /www/new.txt")
	if b, err := os.ReadFile(filepath.Join(site, "new.txt")); err != nil || string(b) != "from container\n" {
		t.Fatalf("a write in the bind mount is not on the host: %q %v", b, err)
	}
	if err := os.WriteFile(filepath.Join(site, "later.txt"), []byte("later\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	mustEqual(t, "a host write shows in the container", e.ok(t, "exec", name, "cat", "/www/later.txt"), "later")
	mustEqual(t, ":ro is readable", e.ok(t, "exec", name, "cat", "/ro/index.html"), "from host")
	r := e.docker(t, "exec", name, "sh", "-c", "echo x > /ro/nope.txt")
	if r.Code == 0 || !strings.Contains(r.Stderr+r.Stdout, "Read-only file system") {
		t.Fatalf(":ro bind mount is writable: %s", r)
	}
	mounts := e.inspect(t, "{{range .Mounts}}{{.Type}}|{{.Source}}|{{.Destination}}|{{.RW}} {{end}}", name)
	for _, want := range []string{"bind|" + site + "|/www|true", "bind|" + site + "|/ro|false"} {
		mustContain(t, "inspect .Mounts", mounts, want)
	}

	// A single file, and a missing host directory (-v creates it).
	file := filepath.Join(host, "one.txt")
	if err := os.WriteFile(file, []byte("one file\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	mustEqual(t, "bind mount of a file", e.ok(t, "run", "--rm", "-v", file+":/etc/one.txt:ro", bbImage, "cat", "/etc/one.txt"), "one file")
	missing := filepath.Join(host, "made", "by", "docker")
	e.ok(t, "run", "--rm", "-v", missing+":/m", bbImage, "touch", "/m/x")
	if _, err := os.Stat(filepath.Join(missing, "x")); err != nil {
		t.Fatalf("-v with a missing host directory: %v", err)
	}

	// --mount.
	vol := uniq("mountvol")
	e.volumeRmOnCleanup(t, vol)
	out := e.ok(t, "run", "--rm",
		"--mount", "type=bind,source="+site+",target=/b,readonly",
		"--mount", "type=volume,source="+vol+",target=/v",
		"--mount", "type=tmpfs,target=/t",
		bbImage, "sh", "-c", "cat /b/index.html; touch /b/x 2>/dev/null || echo b-ro; echo v > /v/f && cat /v/f; grep ' /t ' /proc/mounts")
	mustContain(t, "--mount type=bind", out, "from host")
	mustContain(t, "--mount type=bind,readonly", out, "b-ro")
	mustContain(t, "--mount type=volume", out, "\nv\n")
	mustContain(t, "--mount type=tmpfs", out, "tmpfs /t tmpfs")
	if got := e.volumeNames(t); !contains(got, vol) {
		t.Fatalf("--mount type=volume did not create the named volume %s: %v", vol, got)
	}
	e.volumeMountpoint(t, vol)
	r = e.docker(t, "run", "--rm", "--mount", "type=bind,source="+filepath.Join(host, "absent")+",target=/x", bbImage, "true")
	if r.Code == 0 {
		t.Fatalf("--mount of a missing bind source succeeded: %s", r)
	}
}

// TestVolumesAnonymous: -v /path makes an anonymous volume; rm -v removes it; --rm removes it too.
func TestVolumesAnonymous(t *testing.T) {
	e := needEngine(t)
	name := uniq("anon")
	e.sleeper(t, name, "-v", "/data")
	m := strings.Split(e.inspect(t, "{{range .Mounts}}{{.Type}}|{{.Name}}|{{.Destination}}{{end}}", name), "|")
	if len(m) != 3 || m[0] != "volume" || !hexID64.MatchString(m[1]) || m[2] != "/data" {
		t.Fatalf("anonymous volume in .Mounts: %v", m)
	}
	vol := m[1]
	e.volumeRmOnCleanup(t, vol)
	if got := e.volumeNames(t); !contains(got, vol) {
		t.Fatalf("volume ls lacks the anonymous volume %s", vol)
	}
	e.volumeMountpoint(t, vol)
	e.ok(t, "exec", name, "sh", "-c", "echo anon > /data/f")
	e.ok(t, "rm", "-f", "-v", name)
	if got := e.volumeNames(t); contains(got, vol) {
		t.Fatalf("rm -v left the anonymous volume %s", vol)
	}

	// Without -v the anonymous volume stays.
	keep := uniq("anonkeep")
	e.rmOnCleanup(t, keep)
	e.ok(t, "create", "--name", keep, "-v", "/data", bbImage)
	kept := e.inspect(t, "{{range .Mounts}}{{.Name}}{{end}}", keep)
	e.volumeRmOnCleanup(t, kept)
	e.ok(t, "rm", keep)
	if got := e.volumeNames(t); !contains(got, kept) {
		t.Fatalf("rm without -v removed the anonymous volume %s", kept)
	}

	// run --rm removes its anonymous volumes.
	before := e.volumeNames(t)
	e.ok(t, "run", "--rm", "-v", "/scratch", bbImage, "touch", "/scratch/x")
	eventually(t, 10*time.Second, "run --rm leaves no anonymous volume", func() (bool, string) {
		after := e.volumeNames(t)
		for _, v := range after {
			if !contains(before, v) {
				return false, "new volume " + v
			}
		}
		return true, ""
	})
}
