package pods

import (
	"fmt"
	"sync/atomic"
	"testing"
)

func TestSlowStartDoublesBatches(t *testing.T) {
	var calls atomic.Int32
	n, err := SlowStart(100, func() error { calls.Add(1); return nil })
	if n != 100 || err != nil || calls.Load() != 100 {
		t.Fatalf("SlowStart(100) = %d, %v after %d calls", n, err, calls.Load())
	}
	calls.Store(0)
	n, err = SlowStart(100, func() error {
		if calls.Add(1) > 5 {
			return fmt.Errorf("no")
		}
		return nil
	})
	// batches 1, 2, 4: the third batch has failures, so 7 calls and at most 5 successes.
	if err == nil || calls.Load() != 7 || n != 5 {
		t.Fatalf("slowStart with failures = %d, %v after %d calls", n, err, calls.Load())
	}
}
