// Command netprobe is the benchmark's HTTP client (bench/run.sh builds it; stdlib only).
//
//	netprobe first200 -url URL [-want TEXT] [-during] [-interval D] [-timeout D] [-v] -- COMMAND ARGS...
//
// runs COMMAND (`docker run -d -p ...`) and, once it has exited (or, with -during, from the
// moment it starts), polls URL until an answer "200" whose body contains TEXT, as a script's
// `docker run -d ... && until curl ...` would. Attempts overlap: a new one starts every
// -interval whether or not the earlier ones have finished (each with a 1 s limit, at most 1000
// at once), so a connection that hangs costs one interval, not a timeout. COMMAND must exit 0
// and the answer must come within -timeout of the start. -v logs every attempt to stderr.
// Prints, on one line:
//
//	FIRST200_US COMMAND_US COMMAND_STDOUT
//
// (µs from just before COMMAND started to the first 200, and to COMMAND's exit).
//
//	netprobe load -url URL -size BYTES [-conns N] [-duration D] [-max-requests N]
//
// fetches URL over N connections in parallel for D (and at most N requests in all); every
// answer must be a 200 of exactly BYTES bytes, or the run fails. Prints:
//
//	BYTES REQUESTS SECONDS MBPS MAX_MS SLOW
//
// (MBPS in MiB/s; MAX_MS the slowest request; SLOW how many took over 200 ms).
//
// Both stop by themselves: every loop is bounded in time and count.
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		fail("usage: netprobe first200|load ...")
	}
	switch os.Args[1] {
	case "first200":
		first200(os.Args[2:])
	case "load":
		load(os.Args[2:])
	default:
		fail("unknown subcommand %q", os.Args[1])
	}
}

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "netprobe: "+format+"\n", args...)
	os.Exit(1)
}

func first200(args []string) {
	fs := flag.NewFlagSet("first200", flag.ExitOnError)
	url := fs.String("url", "", "URL to poll")
	want := fs.String("want", "", "text the body must contain")
	during := fs.Bool("during", false, "poll while COMMAND runs, not from when it has exited")
	interval := fs.Duration("interval", 2*time.Millisecond, "time between the starts of two attempts")
	timeout := fs.Duration("timeout", 30*time.Second, "give up after this long")
	verbose := fs.Bool("v", false, "log every attempt to stderr")
	_ = fs.Parse(args)
	cmdArgs := fs.Args()
	if *url == "" || len(cmdArgs) == 0 {
		fail("first200: -url and a command are required")
	}

	var stdout, stderr bytes.Buffer
	cmd := exec.Command(cmdArgs[0], cmdArgs[1:]...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	t0 := time.Now()
	ctx, cancel := context.WithDeadline(context.Background(), t0.Add(*timeout))
	defer cancel()
	if err := cmd.Start(); err != nil {
		fail("first200: %v", err)
	}
	cmdDone := make(chan error, 1)
	var cmdUS int64 // written before cmdDone is sent to
	go func() {
		err := cmd.Wait()
		cmdUS = time.Since(t0).Microseconds()
		cmdDone <- err
	}()
	// waitCmd: COMMAND must exit 0 within the time limit.
	waitCmd := func() {
		var err error
		select {
		case err = <-cmdDone:
		case <-ctx.Done():
			select {
			case err = <-cmdDone:
			default:
				_ = cmd.Process.Kill()
				<-cmdDone
				err = errors.New("timed out")
			}
		}
		if err != nil {
			fail("first200: %s: %v: %s", strings.Join(cmdArgs, " "), err, strings.TrimSpace(stderr.String()))
		}
	}
	if !*during {
		waitCmd()
	}

	firstUS, lastErr := poll(ctx, t0, *url, *want, *interval, *verbose)
	if *during {
		waitCmd()
	}
	if firstUS < 0 {
		fail("first200: no 200 from %s within %v (last: %s)", *url, *timeout, lastErr)
	}
	fmt.Printf("%d %d %s\n", firstUS, cmdUS, strings.TrimSpace(stdout.String()))
}

// poll starts an attempt on url every interval until one gets a 200 whose body contains want
// (or ctx ends: -1); returns µs since t0 at that answer, and the last error seen. Attempts
// overlap, each with a 1 s limit, at most 1000 at once.
func poll(ctx context.Context, t0 time.Time, url, want string, interval time.Duration, verbose bool) (int64, string) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	client := &http.Client{
		Timeout:   time.Second,
		Transport: &http.Transport{DisableKeepAlives: true, DisableCompression: true, Proxy: nil},
	}
	got := make(chan int64, 1)
	var lastErr atomic.Value
	lastErr.Store("none")
	var wg sync.WaitGroup
	slots := make(chan struct{}, 1000)
	attempt := func() {
		defer wg.Done()
		defer func() { <-slots }()
		start := time.Since(t0)
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := client.Do(req)
		if verbose {
			fmt.Fprintf(os.Stderr, "attempt %v -> %v: %v\n", start.Round(time.Millisecond), time.Since(t0).Round(time.Millisecond), err)
		}
		if err != nil {
			lastErr.Store(err.Error())
			return
		}
		body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK || !strings.Contains(string(body), want) {
			lastErr.Store(fmt.Sprintf("status %d, body %.60q, err %v", resp.StatusCode, body, err))
			return
		}
		select {
		case got <- time.Since(t0).Microseconds():
		default:
		}
	}
	launch := func() {
		select {
		case slots <- struct{}{}:
			wg.Add(1)
			go attempt()
		default: // 1000 attempts in flight: skip this one
		}
	}
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	firstUS := int64(-1)
	launch()
	for firstUS < 0 && ctx.Err() == nil {
		select {
		case firstUS = <-got:
		case <-ctx.Done():
		case <-ticker.C:
			launch()
		}
	}
	cancel()
	wg.Wait()
	return firstUS, lastErr.Load().(string)
}

// countingDiscard counts what it swallows.
type countingDiscard struct{ n int64 }

func (c *countingDiscard) Write(p []byte) (int, error) { c.n += int64(len(p)); return len(p), nil }

func load(args []string) {
	fs := flag.NewFlagSet("load", flag.ExitOnError)
	url := fs.String("url", "", "URL to fetch")
	size := fs.Int64("size", 0, "exact body size every answer must have")
	conns := fs.Int("conns", 4, "parallel connections")
	duration := fs.Duration("duration", 3*time.Second, "how long to fetch")
	maxReq := fs.Int64("max-requests", 100000, "stop after this many requests in all")
	_ = fs.Parse(args)
	if *url == "" || *size <= 0 || *conns <= 0 {
		fail("load: -url, -size and -conns are required")
	}

	client := &http.Client{
		Timeout: 10 * time.Second,
		Transport: &http.Transport{
			DisableCompression:  true,
			MaxIdleConnsPerHost: *conns,
			Proxy:               nil,
		},
	}
	var (
		started  atomic.Int64
		requests atomic.Int64
		total    atomic.Int64
		maxUS    atomic.Int64
		slow     atomic.Int64
		errOnce  sync.Once
		firstErr error
		wg       sync.WaitGroup
	)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	t0 := time.Now()
	deadline := t0.Add(*duration)
	for i := 0; i < *conns; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil && time.Now().Before(deadline) && started.Add(1) <= *maxReq {
				t := time.Now()
				err := fetch(ctx, client, *url, *size, &total)
				if err != nil {
					errOnce.Do(func() { firstErr = err; cancel() })
					return
				}
				requests.Add(1)
				us := time.Since(t).Microseconds()
				if us > 200000 {
					slow.Add(1)
				}
				for m := maxUS.Load(); us > m && !maxUS.CompareAndSwap(m, us); m = maxUS.Load() {
				}
			}
		}()
	}
	wg.Wait()
	secs := time.Since(t0).Seconds()
	if firstErr != nil {
		fail("load: %s: %v (after %d good answers)", *url, firstErr, requests.Load())
	}
	if requests.Load() == 0 {
		fail("load: %s: no request completed", *url)
	}
	fmt.Printf("%d %d %.3f %.1f %.1f %d\n", total.Load(), requests.Load(), secs,
		float64(total.Load())/secs/(1<<20), float64(maxUS.Load())/1000, slow.Load())
}

func fetch(ctx context.Context, client *http.Client, url string, size int64, total *atomic.Int64) error {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	var c countingDiscard
	if _, err := io.Copy(&c, resp.Body); err != nil {
		return err
	}
	if c.n != size {
		return fmt.Errorf("body of %d bytes, want %d", c.n, size)
	}
	total.Add(c.n)
	return nil
}
