package container

import (
	"testing"
	"time"

	dcontainer "github.com/moby/moby/api/types/container"
)

func TestShouldRestart(t *testing.T) {
	pol := func(name string, n int) dcontainer.RestartPolicy {
		return dcontainer.RestartPolicy{Name: dcontainer.RestartPolicyMode(name), MaximumRetryCount: n}
	}
	for _, tc := range []struct {
		name    string
		policy  dcontainer.RestartPolicy
		code, n int
		stopped bool
		want    bool
	}{
		{"no never restarts", pol("no", 0), 1, 0, false, false},
		{"always restarts on success", pol("always", 0), 0, 5, false, true},
		{"always stays down after docker stop", pol("always", 0), 137, 0, true, false},
		{"unless-stopped restarts", pol("unless-stopped", 0), 3, 0, false, true},
		{"on-failure ignores exit 0", pol("on-failure", 0), 0, 0, false, false},
		{"on-failure restarts on error", pol("on-failure", 0), 2, 10, false, true},
		{"on-failure:3 under the limit", pol("on-failure", 3), 2, 2, false, true},
		{"on-failure:3 at the limit", pol("on-failure", 3), 2, 3, false, false},
	} {
		if got := ShouldRestart(tc.policy, tc.code, tc.n, tc.stopped); got != tc.want {
			t.Errorf("%s: ShouldRestart = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestBackoffDoublesAndResetsAfterALongRun(t *testing.T) {
	var b Backoff
	var got []time.Duration
	for i := 0; i < 4; i++ {
		got = append(got, b.Next(time.Second))
	}
	want := []time.Duration{100 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond, 800 * time.Millisecond}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("delays = %v, want %v", got, want)
		}
	}
	if d := b.Next(11 * time.Second); d != 100*time.Millisecond {
		t.Errorf("after a 11 s run the delay is %v, want 100ms", d)
	}
	for i := 0; i < 20; i++ {
		b.Next(0)
	}
	if d := b.Next(0); d != time.Minute {
		t.Errorf("the delay grows to %v, want at most a minute", d)
	}
}

func TestValidateName(t *testing.T) {
	for name, ok := range map[string]bool{"web": true, "/web": true, "a_b.c-d": true, "bad/name": false, "-x": false, "x": false, "": false} {
		if err := ValidateName(name); (err == nil) != ok {
			t.Errorf("ValidateName(%q) = %v", name, err)
		}
	}
}
