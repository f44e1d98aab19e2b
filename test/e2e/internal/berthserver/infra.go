package berthserver

import (
	"io/fs"
	"path/filepath"

	"github.com/berth-project/berth/internal/engine/sandbox"
)

// KillInfras ends the pod sandboxes' infra processes of every node whose data lives
// under dir, as the nodes' sandbox stores record them. They run in the host's cgroup and
// their command lines name no directory, so the searches by cgroup and by command line
// miss them; a recorded pid whose start time no longer matches is left alone (see
// runtime.Infra.Kill).
func KillInfras(dir string) {
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.IsDir() || d.Name() != "sandboxes" {
			return nil
		}
		if st, err := sandbox.Open(p); err == nil {
			for _, s := range st.List() {
				s.Infra.Kill()
			}
		}
		return filepath.SkipDir
	})
}
