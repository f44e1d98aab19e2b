package cronjob

import (
	"fmt"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
	batchv1 "k8s.io/api/batch/v1"
)

// tooManyMissed is how many missed start times are counted before giving up on
// counting (the most recent one is still started).
const tooManyMissed = 100

// Schedule parses a CronJob's schedule in its time zone (the controller's local
// zone without one): five fields or a descriptor such as @hourly.
func Schedule(cj *batchv1.CronJob) (cron.Schedule, error) {
	spec := cj.Spec.Schedule
	if strings.Contains(spec, "TZ=") && cj.Spec.TimeZone != nil {
		return nil, fmt.Errorf("schedule %q: CRON_TZ or TZ is not allowed with spec.timeZone", spec)
	}
	if cj.Spec.TimeZone != nil {
		if _, err := time.LoadLocation(*cj.Spec.TimeZone); err != nil {
			return nil, fmt.Errorf("time zone %q: %w", *cj.Spec.TimeZone, err)
		}
		spec = "CRON_TZ=" + *cj.Spec.TimeZone + " " + spec
	}
	s, err := cron.ParseStandard(spec)
	if err != nil {
		return nil, fmt.Errorf("schedule %q: %w", cj.Spec.Schedule, err)
	}
	return s, nil
}

// lastMissed returns the most recent start time in (earliest, now], if any, and how
// many there were (a controller down for a year may walk half a million minutes;
// past that, the count is a lower bound and the start time the last one reached).
func lastMissed(s cron.Schedule, earliest, now time.Time) (time.Time, int) {
	var last time.Time
	n := 0
	for t := s.Next(earliest); !t.IsZero() && !t.After(now) && n < 500000; t = s.Next(t) {
		last = t
		n++
	}
	return last, n
}
