package snapshot

import (
	"os"
	"path/filepath"
)

// The init layer sits between a container's image and its writable layer, as Docker's
// "-init" layer does, but one serves every container: it holds the mount points the
// runtime mounts over at each start (/proc, /sys, /dev, the files of /etc the engine
// writes) and /.dockerenv. Without it each start creates them in the container's own
// layer, where `docker diff` and `docker commit` would then find them.

// initEntries are the init layer's paths: directories end in "/".
var initEntries = []string{
	"proc/", "sys/", "dev/", "etc/",
	"etc/hosts", "etc/hostname", "etc/resolv.conf", ".dockerenv",
}

func (s *Store) initDir() string { return filepath.Join(s.root, "init") }

// makeInitLayer creates the init layer at dir, or completes one an older engine made.
func makeInitLayer(dir string) error {
	for _, e := range append([]string{""}, initEntries...) {
		p := filepath.Join(dir, e)
		if e == "" || e[len(e)-1] == '/' {
			if err := os.MkdirAll(p, 0o755); err != nil {
				return err
			}
			continue
		}
		f, err := os.OpenFile(p, os.O_CREATE|os.O_RDONLY, 0o755)
		if err != nil {
			return err
		}
		f.Close()
	}
	return nil
}
