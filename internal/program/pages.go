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
	eachProgramMapping(func(start, length uintptr) {
		unix.Syscall(unix.SYS_MADVISE, start, length, unix.MADV_PAGEOUT)
	})
}

// Prefault maps every page of this program's code and read-only data into its page
// tables now (MADV_POPULATE_READ), from the page cache. A program that waits on
// standby calls it while it waits: otherwise the first run of each part of its code
// takes a page fault, hundreds of them on a path as long as a container's create, all
// on the path of the start that woke it. Errors are ignored: an older kernel simply
// faults as before.
func Prefault() {
	eachProgramMapping(func(start, length uintptr) {
		unix.Syscall(unix.SYS_MADVISE, start, length, unix.MADV_POPULATE_READ)
	})
}

// eachProgramMapping calls fn for each of this program's mappings of its own
// executable file that hold code or read-only data.
func eachProgramMapping(fn func(start, length uintptr)) {
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
		// start-end perms offset dev inode path (a path may hold spaces: "... (deleted)")
		fields := strings.Fields(sc.Text())
		if len(fields) < 6 || strings.Join(fields[5:], " ") != exe || (fields[1] != "r-xp" && fields[1] != "r--p") {
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
		fn(uintptr(a), uintptr(b-a))
	}
}
