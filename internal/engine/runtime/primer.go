package runtime

import (
	"bufio"
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// A migration primer takes the kernel's cost of moving a process into a cgroup off the
// path of a container start.
//
// Every move of a process between cgroups (runc writes the new container's pid into
// cgroup.procs) takes one global lock, cgroup_threadgroup_rwsem. Taking it for writing
// after a quiet spell waits for an RCU grace period (rcu_sync_enter), 5-25 ms on this
// kind of machine; while writers keep coming, and for one more grace period after the
// last, it costs nothing. So while containers are being started, the primer rewrites
// the engine's own pid into the cgroup it already is in (a move that moves nothing)
// every few milliseconds, and the runtime's real move finds the lock warm. It stops
// once starts have been quiet for a while: writers-ready mode makes every fork and exit
// a little dearer.
//
// Where the kernel moves processes without waiting for a grace period (a cgroup2
// hierarchy mounted with favordynmods, as some distributions do), priming only costs
// CPU, and a wake-up every tick: once the first write of several spells in a row has
// been cheap, it stops for good. Probe takes those samples when the engine starts, as
// starts that come without pause make one long spell, with only one first write.
type Primer struct {
	mu     sync.Mutex
	until  time.Time
	active bool
	off    bool // priming does nothing: the engine's cgroup cannot be written, or moves never wait here
	cheap  int  // spells in a row whose first write did not wait
}

// primeTick is well under a grace period; primeHold is how long priming goes on
// after the last start asked for it.
const (
	primeTick = 3 * time.Millisecond
	primeHold = 500 * time.Millisecond
	// A cold move waits 5-25 ms for a grace period; one that took less than coldMove
	// did not. After cheapSpells such spells in a row, priming stops.
	coldMove    = time.Millisecond
	cheapSpells = 3
	// probeGap is longer than any grace period here: a move after it is a cold one.
	probeGap = 100 * time.Millisecond
)

// Probe measures, in the background, cheapSpells single moves probeGap apart, each
// counted as a spell of its own (see sawCheapSpell). It stops early when priming
// starts meanwhile: that spell's first write is measured instead. Call it once, as the
// engine starts.
func (p *Primer) Probe() {
	go func() {
		procs := openOwnCgroupProcs()
		if procs == nil {
			return
		}
		defer procs.Close()
		for i := 0; i < cheapSpells; i++ {
			time.Sleep(probeGap) // the quiet that makes the next move a cold one
			p.mu.Lock()
			busy := p.active || p.off
			p.mu.Unlock()
			if busy {
				return
			}
			cheap, err := moveSelf(procs)
			if err != nil || p.sawCheapSpell(cheap) {
				return
			}
		}
	}()
}

// Prime keeps the lock warm from now until primeHold after the last call. It returns
// at once; the first write of a cold spell is the one that waits.
func (p *Primer) Prime() {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.off {
		return
	}
	p.until = time.Now().Add(primeHold)
	if !p.active {
		p.active = true
		go p.run()
	}
}

func (p *Primer) run() {
	t := time.NewTicker(primeTick)
	defer t.Stop()
	// The cgroup is looked up once per spell (a move by someone else, systemd, is
	// followed at the next spell); each tick is then one write, a move into the cgroup
	// it is in.
	procs := openOwnCgroupProcs()
	if procs != nil {
		defer procs.Close()
		for first := true; ; first = false {
			cheap, err := moveSelf(procs)
			if err != nil {
				break
			}
			if first && p.sawCheapSpell(cheap) {
				return
			}
			<-t.C
			p.mu.Lock()
			if time.Now().After(p.until) {
				p.active = false
				p.mu.Unlock()
				return
			}
			p.mu.Unlock()
		}
	}
	// The cgroup cannot be written: priming does nothing here.
	p.mu.Lock()
	p.off, p.active = true, false
	p.mu.Unlock()
}

// moveSelf writes this process's pid into procs, the cgroup.procs of the cgroup it is
// in (a move that moves nothing), and reports whether the move was cheap: it did not
// wait for a grace period.
func moveSelf(procs *os.File) (cheap bool, err error) {
	start := time.Now()
	_, err = procs.Write(selfPid)
	return time.Since(start) < coldMove, err
}

var selfPid = []byte(strconv.Itoa(os.Getpid()))

// sawCheapSpell counts spells whose first write did not wait; it reports, and records,
// that priming is unneeded once cheapSpells of them came in a row.
func (p *Primer) sawCheapSpell(cheap bool) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !cheap {
		p.cheap = 0
		return false
	}
	p.cheap++
	if p.cheap < cheapSpells {
		return false
	}
	p.off, p.active = true, false
	return true
}

// openOwnCgroupProcs opens, for writing, the cgroup.procs of the cgroup this process
// is in (its pids hierarchy on cgroup v1, the unified one on v2).
func openOwnCgroupProcs() *os.File {
	dir := ownCgroupDir()
	if dir == "" {
		return nil
	}
	f, err := os.OpenFile(filepath.Join(dir, "cgroup.procs"), os.O_WRONLY, 0)
	if err != nil {
		return nil
	}
	return f
}

// ownCgroupDir is the directory of this process's cgroup in one hierarchy it can write:
// v1's pids controller if mounted, else the v2 unified hierarchy.
func ownCgroupDir() string {
	data, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return ""
	}
	var unified string
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		// hierarchy-ID:controller-list:path
		parts := strings.SplitN(sc.Text(), ":", 3)
		if len(parts) != 3 {
			continue
		}
		switch {
		case parts[1] == "pids":
			if d := filepath.Join("/sys/fs/cgroup/pids", parts[2]); exists(d) {
				return d
			}
		case parts[0] == "0" && parts[1] == "":
			unified = parts[2]
		}
	}
	if unified == "" {
		return ""
	}
	for _, root := range []string{"/sys/fs/cgroup/unified", "/sys/fs/cgroup"} {
		if _, err := os.Stat(filepath.Join(root, "cgroup.controllers")); err == nil {
			if d := filepath.Join(root, unified); exists(d) {
				return d
			}
		}
	}
	return ""
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
