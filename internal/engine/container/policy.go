package container

import (
	"time"

	dcontainer "github.com/moby/moby/api/types/container"
)

// ShouldRestart applies a restart policy to an exit, as Docker does: "always" and
// "unless-stopped" restart unless the user stopped the container; "on-failure[:N]"
// restarts on a non-zero exit while fewer than N restarts were made.
func ShouldRestart(p dcontainer.RestartPolicy, exitCode, restarts int, manuallyStopped bool) bool {
	if manuallyStopped {
		return false
	}
	switch p.Name {
	case dcontainer.RestartPolicyAlways, dcontainer.RestartPolicyUnlessStopped:
		return true
	case dcontainer.RestartPolicyOnFailure:
		if exitCode == 0 {
			return false
		}
		return p.MaximumRetryCount == 0 || restarts < p.MaximumRetryCount
	}
	return false
}

// Backoff is Docker's restart delay: 100 ms doubling per restart, at most one minute,
// and back to 100 ms after a run of at least ten seconds.
type Backoff struct{ next time.Duration }

// Next returns the delay before the next restart, given how long the last run lasted.
func (b *Backoff) Next(ran time.Duration) time.Duration {
	if ran >= 10*time.Second || b.next == 0 {
		b.next = 100 * time.Millisecond
	} else {
		b.next *= 2
		if b.next > time.Minute {
			b.next = time.Minute
		}
	}
	return b.next
}

// StartOnBoot reports whether a container should be started when the engine starts
// and finds it not running (after a host reboot, say).
func StartOnBoot(c *Container) bool {
	switch c.HostConfig.RestartPolicy.Name {
	case dcontainer.RestartPolicyAlways:
		return true
	case dcontainer.RestartPolicyUnlessStopped:
		return !c.ManuallyStopped
	}
	return false
}
