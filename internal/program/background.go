package program

import (
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"

	"golang.org/x/sys/unix"
)

// IdleNice is the nice value of work that only has to be done eventually: it gets the
// CPU that nothing else wants, so on a small machine it does not slow a container start
// that is under way.
const IdleNice = 19

// Background runs fn in a goroutine of its own on an OS thread of its own at IdleNice,
// for clean-up that no client waits for (deleting a removed container's files). The
// thread is not handed back to the Go scheduler: it ends with fn, so no other
// goroutine ever runs at that priority.
func Background(fn func()) {
	go func() {
		runtime.LockOSThread() // never unlocked: the thread exits with the goroutine
		unix.Setpriority(unix.PRIO_PROCESS, unix.Gettid(), IdleNice)
		fn()
	}()
}

// Renice sets the nice value of every thread of process pid (Linux's nice is per
// thread; a thread created later inherits its creator's). Errors are ignored: a
// process that is gone has nothing to renice.
func Renice(pid, nice int) {
	dir := filepath.Join("/proc", strconv.Itoa(pid), "task")
	tasks, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, t := range tasks {
		if tid, err := strconv.Atoi(t.Name()); err == nil {
			unix.Setpriority(unix.PRIO_PROCESS, tid, nice)
		}
	}
}

// CanRaisePriority reports whether this process may give a thread back a higher
// priority than it lowered it to (CAP_SYS_NICE, which root has unless a container's
// capability set leaves it out). Work that must come back to the normal priority is
// only ever lowered where it can.
var CanRaisePriority = sync.OnceValue(func() bool {
	ok := make(chan bool, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread exits with the goroutine
		tid := unix.Gettid()
		ok <- unix.Setpriority(unix.PRIO_PROCESS, tid, 1) == nil && unix.Setpriority(unix.PRIO_PROCESS, tid, 0) == nil
	}()
	return <-ok
})
