package apiserver

import "testing"

// A two-generation memo keeps what was put or used in the last two generations of size
// entries and drops what was neither.
func TestTwoGenKeepsWhatIsUsed(t *testing.T) {
	var g twoGen[int, string]
	const size = 4
	for k := 0; k < size; k++ { // generation 1: 0..3
		g.put(k, "v", size)
	}
	for k := size; k < 2*size; k++ { // generation 2: 4..7; 0..3 are old
		g.put(k, "v", size)
	}
	if _, ok := g.get(0, size); !ok { // 0 is carried into generation 3
		t.Fatal("an entry of the old generation is gone")
	}
	for k := 100; k < 100+size-1; k++ { // generation 3 fills: 0, 100..102; 4..7 are old
		g.put(k, "v", size)
	}
	if _, ok := g.get(1, size); ok {
		t.Fatal("an entry two generations old and never used is still there")
	}
	if _, ok := g.get(0, size); !ok {
		t.Fatal("the entry that was used is gone")
	}
	if v := g.getOrPut(200, size, func() string { return "fresh" }); v != "fresh" {
		t.Fatalf("getOrPut of a new key = %q", v)
	}
	if v := g.getOrPut(200, size, func() string { return "again" }); v != "fresh" {
		t.Fatalf("getOrPut of a stored key = %q, want the stored value", v)
	}
}
