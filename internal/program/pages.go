// Package program is about the running berth binary itself, as a process.
package program

import (
	"bufio"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// DropStartupPages gives back the pages of this program that only start-up touched.
//
// berth is one binary with a whole Kubernetes control plane in it, and Go runs every
// linked package's initialisation at start-up, whatever the command: registering the
// API types alone touches tens of megabytes of code and read-only data, which then
// stay resident in a `berth engine` that never uses them again. Once the engine is up,
// this asks the kernel to reclaim the program's clean, file-backed pages
// (MADV_PAGEOUT); what the engine does use faults back in on first use, from the page
// cache. Heap, stacks and writable data are not touched. Errors are ignored: an older
// kernel simply keeps the pages.
func DropStartupPages() {
	exe, err := os.Readlink("/proc/self/exe")
	if err != nil {
		return
	}
	f, err := os.Open("/proc/self/maps")
	if err != nil {
		return
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// start-end perms offset dev inode path
		fields := strings.Fields(sc.Text())
		if len(fields) < 6 || fields[5] != exe || (fields[1] != "r-xp" && fields[1] != "r--p") {
			continue
		}
		start, end, ok := strings.Cut(fields[0], "-")
		if !ok {
			continue
		}
		a, err1 := strconv.ParseUint(start, 16, 64)
		b, err2 := strconv.ParseUint(end, 16, 64)
		if err1 != nil || err2 != nil || b <= a {
			continue
		}
		unix.Syscall(unix.SYS_MADVISE, uintptr(a), uintptr(b-a), unix.MADV_PAGEOUT)
	}
}
