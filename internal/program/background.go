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

// Background queues fn for the background worker: one OS thread at IdleNice, started
// at the first call, that runs what it is given one after the other, for clean-up that
// no client waits for (deleting a removed container's files). No other goroutine ever
// runs on that thread, and no thread is made per call.
func Background(fn func()) {
	startWorker.Do(func() {
		go func() {
			runtime.LockOSThread() // never unlocked: the thread serves only this queue
			unix.Setpriority(unix.PRIO_PROCESS, unix.Gettid(), IdleNice)
			for fn := range background {
				fn()
			}
		}()
	})
	background <- fn
}

var (
	startWorker sync.Once
	background  = make(chan func(), 1024)
)

// RunNiced runs fn on an OS thread of its own at IdleNice and returns when it has. A
// process fn starts inherits that priority, with every thread it makes. The thread ends
// with fn: it is never handed back to the Go scheduler.
func RunNiced(fn func()) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread() // never unlocked: the thread exits with the goroutine
		unix.Setpriority(unix.PRIO_PROCESS, unix.Gettid(), IdleNice)
		fn()
	}()
	<-done
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

// SetName sets the name ps and top show for this process (its main thread's comm, at
// most 15 bytes). Errors are ignored: the name is only for people.
func SetName(name string) {
	os.WriteFile("/proc/self/comm", []byte(name), 0)
}

// OutputTo sends this process's standard output and error to the file at path
// (appended to, made if missing).
func OutputTo(path string) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer f.Close()
	for _, fd := range []int{1, 2} {
		if err := unix.Dup3(int(f.Fd()), fd, 0); err != nil {
			return err
		}
	}
	return nil
}

// StandbyName is the name of a process started ahead of need that waits for work (the
// engine's standby shim and runtime): people, and tests looking for what containers
// left behind, can tell it from a container's shim.
const StandbyName = "berth-standby"

// ReniceGroup sets the nice value of every thread of every process in process group
// pgid, in one system call. Errors are ignored, as with Renice.
func ReniceGroup(pgid, nice int) {
	unix.Setpriority(unix.PRIO_PGRP, pgid, nice)
}

// CanRaisePriority reports whether this process may give a thread back the normal
// priority after lowering it (CAP_SYS_NICE, which root has unless a container's
// capability set leaves it out). Work that must come back to the normal priority is
// only ever lowered where it can.
var CanRaisePriority = sync.OnceValue(func() bool {
	var ok bool
	RunNiced(func() { ok = unix.Setpriority(unix.PRIO_PROCESS, unix.Gettid(), 0) == nil })
	return ok
})
