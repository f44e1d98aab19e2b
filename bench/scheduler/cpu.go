package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// cpuTime is the user+system CPU time a process has used: this one (pid 0) or another
// (from /proc/PID/stat, in clock ticks of 1/100 s).
func cpuTime(pid int) (time.Duration, error) {
	if pid == 0 {
		var ru syscall.Rusage
		if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
			return 0, err
		}
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), nil
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// Fields after the command name (which may hold spaces) start at state, field 3.
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: too few fields", pid)
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("/proc/%d/stat: bad times", pid)
	}
	return time.Duration(utime+stime) * 10 * time.Millisecond, nil
}

// cpuMeter measures the CPU time of the server and of this process over a phase.
type cpuMeter struct {
	serverPid              int
	wall0                  time.Time
	serverStart, selfStart time.Duration
}

func (m *cpuMeter) start() {
	m.wall0 = time.Now()
	if m.serverPid != 0 {
		m.serverStart, _ = cpuTime(m.serverPid)
	}
	m.selfStart, _ = cpuTime(0)
}

// report prints CPU seconds and per-pod milliseconds of each process over the phase.
func (m *cpuMeter) report(pods int) {
	self, _ := cpuTime(0)
	line := fmt.Sprintf("CPU over %v: this process (scheduler and benchmark client) %.1fs, %.2f ms/pod",
		time.Since(m.wall0).Round(time.Millisecond), (self - m.selfStart).Seconds(), float64((self-m.selfStart).Microseconds())/1000/float64(pods))
	if m.serverPid != 0 {
		srv, err := cpuTime(m.serverPid)
		if err == nil {
			line += fmt.Sprintf("; berth server %.1fs, %.2f ms/pod", (srv - m.serverStart).Seconds(), float64((srv-m.serverStart).Microseconds())/1000/float64(pods))
		}
	}
	fmt.Println(line)
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		fmt.Printf("load average (other work on this machine skews the numbers): %s", b)
	}
}
