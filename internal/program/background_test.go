package program

import (
	"os"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// Background work runs at IdleNice on a thread of its own, and the goroutines that
// come after it do not inherit that priority.
func TestBackgroundRunsAtIdleNiceAndLeavesOthersAlone(t *testing.T) {
	before, err := unix.Getpriority(unix.PRIO_PROCESS, 0)
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan int, 1)
	Background(func() {
		// getpriority returns 20-nice for PRIO_PROCESS (the raw system call's value).
		p, err := unix.Getpriority(unix.PRIO_PROCESS, unix.Gettid())
		if err != nil {
			p = -100
		}
		got <- 20 - p
	})
	if n := <-got; n != IdleNice {
		t.Fatalf("background work ran at nice %d, want %d", n, IdleNice)
	}
	if after, _ := unix.Getpriority(unix.PRIO_PROCESS, 0); after != before {
		t.Fatalf("the calling thread's priority changed: %d -> %d", 20-before, 20-after)
	}
}

// Renice reaches every thread of a process.
func TestReniceEveryThread(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: lowering a nice value back needs CAP_SYS_NICE")
	}
	Renice(os.Getpid(), 5)
	defer Renice(os.Getpid(), 0)
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		t.Fatal(err)
	}
	for _, task := range tasks {
		var tid int
		for _, c := range task.Name() {
			tid = tid*10 + int(c-'0')
		}
		p, err := unix.Getpriority(unix.PRIO_PROCESS, tid)
		if err != nil {
			continue // the thread is gone
		}
		if 20-p != 5 {
			t.Fatalf("thread %d at nice %d after Renice(5)", tid, 20-p)
		}
	}
}

// CanRaisePriority says whether the process holds CAP_SYS_NICE, and leaves the calling
// thread as it was.
func TestCanRaisePriorityFollowsCapSysNice(t *testing.T) {
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Skip("no /proc/self/status")
	}
	var eff uint64
	for _, l := range strings.Split(string(status), "\n") {
		if v, ok := strings.CutPrefix(l, "CapEff:"); ok {
			eff, _ = strconv.ParseUint(strings.TrimSpace(v), 16, 64)
		}
	}
	const capSysNice = 23
	want := eff&(1<<capSysNice) != 0
	before, _ := unix.Getpriority(unix.PRIO_PROCESS, 0)
	if got := CanRaisePriority(); got != want {
		t.Fatalf("CanRaisePriority() = %v with CAP_SYS_NICE %v", got, want)
	}
	if after, _ := unix.Getpriority(unix.PRIO_PROCESS, 0); after != before {
		t.Fatalf("the calling thread's priority changed: %d -> %d", 20-before, 20-after)
	}
}
