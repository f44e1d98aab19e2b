package berthserver

import (
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// InfraPIDs finds the pod sandboxes' infra processes of every node whose data lives
// under dir, from their sandbox records. They run in the host's cgroup and their command
// lines name no directory, so neither of the other searches finds them; a pid whose
// start time no longer matches the record is someone else's and is left out.
func InfraPIDs(dir string) []int {
	var pids []int
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || d.Name() != "sandbox.json" {
			return nil
		}
		var rec struct {
			Infra struct {
				Pid   int    `json:"pid"`
				Start uint64 `json:"start"`
			} `json:"infra"`
		}
		data, err := os.ReadFile(p)
		if err != nil || json.Unmarshal(data, &rec) != nil || rec.Infra.Pid <= 0 {
			return nil
		}
		if startTime(rec.Infra.Pid) == rec.Infra.Start {
			pids = append(pids, rec.Infra.Pid)
		}
		return nil
	})
	return pids
}

// startTime is field 22 of /proc/PID/stat, or 0 when the process is gone.
func startTime(pid int) uint64 {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	s := string(data)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 20 {
		return 0
	}
	v, _ := strconv.ParseUint(f[19], 10, 64)
	return v
}
