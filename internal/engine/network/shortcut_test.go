package network

import (
	"fmt"
	"net"
	"os"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// A "container" here is a listener on 127.0.0.1:X; the published port Y is held by a
// bound socket that does not listen, as the engine holds it. Without the shortcut (and
// with no DNAT rule) a connect to Y is refused; with it, the connect reaches X.
func TestShortcutConnectsLoopbackClientsStraightToTheContainer(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: loads cgroup socket programs")
	}
	ctr, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ctr.Close()
	ctrPort := uint16(ctr.Addr().(*net.TCPAddr).Port)
	hold, hostPort, err := reserve(Mapping{Proto: "tcp"})
	if err != nil {
		t.Fatal(err)
	}
	defer hold.Close()
	accepted := make(chan net.Conn, 4)
	go func() {
		for {
			c, err := ctr.Accept()
			if err != nil {
				return
			}
			accepted <- c
		}
	}()
	published := net.JoinHostPort("127.0.0.1", strconv.Itoa(int(hostPort)))

	if c, err := net.DialTimeout("tcp4", published, 2*time.Second); err == nil {
		c.Close()
		t.Fatalf("connect to %s succeeded before anything was published", published)
	}

	sc := NewShortcut(nil)
	defer sc.Close()
	sc.set("t0", []Mapping{{Proto: "tcp", HostPort: hostPort, CtrIP: "127.0.0.1", CtrPort: ctrPort}})
	if sc.err != nil {
		t.Fatalf("shortcut did not load: %v", sc.err)
	}
	c, err := net.DialTimeout("tcp4", published, 2*time.Second)
	if err != nil {
		t.Fatalf("connect to the published port %s: %v", published, err)
	}
	if got := c.RemoteAddr().String(); got != published {
		t.Errorf("the client's peer is %s, want the address it dialled, %s", got, published)
	}
	select {
	case s := <-accepted:
		if got := s.LocalAddr().(*net.TCPAddr).Port; got != int(ctrPort) {
			t.Errorf("the container accepted on port %d, want %d", got, ctrPort)
		}
		if _, err := c.Write([]byte("ping")); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 4)
		s.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := s.Read(buf); err != nil || string(buf) != "ping" {
			t.Errorf("container read %q, %v", buf, err)
		}
		s.Close()
	case <-time.After(5 * time.Second):
		t.Fatal("the container accepted nothing")
	}
	c.Close()

	// Another network namespace's 127.0.0.1 is its own: its connects are left alone.
	if err := inNewNetns(func() error {
		lo, err := netlink.LinkByName("lo")
		if err != nil {
			return err
		}
		if err := netlink.LinkSetUp(lo); err != nil {
			return err
		}
		own, err := net.Listen("tcp4", published)
		if err != nil {
			return err
		}
		defer own.Close()
		c, err := net.DialTimeout("tcp4", published, 2*time.Second)
		if err != nil {
			return fmt.Errorf("a connect to %s from another network namespace did not reach its own listener: %w", published, err)
		}
		return c.Close()
	}); err != nil {
		t.Error(err)
	}

	// A port published on one address is not reached through another.
	sc.set("t0", []Mapping{{Proto: "tcp", HostIP: "127.0.0.3", HostPort: hostPort, CtrIP: "127.0.0.1", CtrPort: ctrPort}})
	if c, err := net.DialTimeout("tcp4", published, 2*time.Second); err == nil {
		c.Close()
		t.Errorf("%s reached a port published on 127.0.0.3 only", published)
	}
	only := net.JoinHostPort("127.0.0.3", strconv.Itoa(int(hostPort)))
	if c, err := net.DialTimeout("tcp4", only, 2*time.Second); err != nil {
		t.Errorf("connect to %s: %v", only, err)
	} else {
		c.Close()
	}

	// Unpublished: refused again.
	sc.set("t0", nil)
	if c, err := net.DialTimeout("tcp4", published, 2*time.Second); err == nil {
		c.Close()
		t.Errorf("connect to %s succeeded after the port was unpublished", published)
	}
	// Closed: the programs are gone.
	sc.set("t0", []Mapping{{Proto: "tcp", HostPort: hostPort, CtrIP: "127.0.0.1", CtrPort: ctrPort}})
	sc.Close()
	if c, err := net.DialTimeout("tcp4", published, 2*time.Second); err == nil {
		c.Close()
		t.Errorf("connect to %s succeeded after the shortcut was closed", published)
	}
}

// inNewNetns runs f on a thread of its own in a new network namespace with lo up; the
// thread is thrown away afterwards.
func inNewNetns(f func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread dies with the goroutine
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			errc <- err
			return
		}
		errc <- f()
	}()
	return <-errc
}
