package expectations

import (
	"testing"
	"time"
)

func TestExpectationsAreMetByObservationsOrTime(t *testing.T) {
	e := New()
	now := time.Now()
	e.now = func() time.Time { return now }
	if !e.Satisfied("rs") {
		t.Fatal("nothing awaited, yet not satisfied")
	}
	e.ExpectCreations("rs", 2)
	e.CreationObserved("rs")
	if e.Satisfied("rs") {
		t.Fatal("satisfied with one of two creations seen")
	}
	e.CreationObserved("rs")
	if !e.Satisfied("rs") {
		t.Fatal("both creations seen, yet not satisfied")
	}

	e.ExpectDeletions("rs", []string{"ns/a", "ns/b"})
	e.DeletionObserved("rs", "ns/a")
	e.DeletionObserved("rs", "ns/a") // the same deletion seen twice counts once
	e.DeletionObserved("rs", "ns/c") // not one we asked for
	if e.Satisfied("rs") {
		t.Fatal("satisfied with one of two deletions seen")
	}
	now = now.Add(ttl + time.Second)
	if !e.Satisfied("rs") {
		t.Fatal("a lost event blocks the controller past the TTL")
	}
	e.Forget("rs")
	if !e.Satisfied("rs") {
		t.Fatal("forgotten key not satisfied")
	}
}
