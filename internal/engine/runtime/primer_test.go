package runtime

import (
	"os"
	"testing"
	"time"
)

// Priming must never move the engine: it rewrites the engine's pid into the cgroup the
// engine is already in, and stops by itself once starts are quiet.
func TestPrimerLeavesTheProcessWhereItIs(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: writes cgroup.procs")
	}
	if ownCgroupDir() == "" {
		t.Skip("no writable pids or unified cgroup hierarchy here")
	}
	before, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		t.Fatal(err)
	}
	var p Primer
	p.Prime()
	deadline := time.Now().Add(5 * time.Second)
	for {
		p.mu.Lock()
		active, off := p.active, p.off
		p.mu.Unlock()
		if off {
			t.Fatal("priming turned itself off: the engine's own cgroup could not be written")
		}
		if !active {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("priming still running 5 s after the only call (hold is 500 ms)")
		}
		time.Sleep(10 * time.Millisecond) // polling the primer's state, not synchronising on it
	}
	after, _ := os.ReadFile("/proc/self/cgroup")
	if string(before) != string(after) {
		t.Fatalf("priming moved the process:\nbefore:\n%s\nafter:\n%s", before, after)
	}
}

// Where moves never wait (favordynmods), priming stops after cheapSpells spells in a row
// whose first write was cheap; one that waited starts the count again.
func TestPrimerStopsWhereMovesDoNotWait(t *testing.T) {
	var p Primer
	for i, cheap := range []bool{true, true, false, true, true} {
		if p.sawCheapSpell(cheap) {
			t.Fatalf("spell %d: priming stopped before %d cheap spells in a row", i, cheapSpells)
		}
	}
	if !p.sawCheapSpell(true) {
		t.Fatalf("priming goes on after %d cheap spells in a row", cheapSpells)
	}
	p.Prime()
	p.mu.Lock()
	active := p.active
	p.mu.Unlock()
	if active {
		t.Fatal("Prime started a spell after priming was found unneeded")
	}
}
