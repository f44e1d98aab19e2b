package runtime

import (
	"errors"
	"os"
	"path/filepath"
	"time"
)

// Release lets the created container's process (the init, pid) begin: libcontainer's
// init waits until its exec fifo (in the container's state dir) is opened for reading
// and a byte read from it, then executes the process. Unlike libcontainer's Exec, this
// does not wait for the process's exec to finish; the fifo goes, as with Exec, so that
// the container counts as running. An init that has died meanwhile is an error, found
// within a tenth of a second, as runc finds it.
func Release(stateDir string, pid int) error {
	fifo := filepath.Join(stateDir, "exec.fifo")
	opened := make(chan error, 1)
	go func() {
		// Blocks until the init opens its end; if it never does, this goroutine stays
		// blocked until the process exits (runc's Exec does the same).
		f, err := os.OpenFile(fifo, os.O_RDONLY, 0)
		if err == nil {
			var b [1]byte
			_, err = f.Read(b[:])
			f.Close()
		}
		opened <- err
	}()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	deadline := time.Now().Add(10 * time.Second)
	for {
		select {
		case err := <-opened:
			os.Remove(fifo)
			return err
		case <-tick.C:
			if _, err := startTime(pid); err != nil { // gone, or a zombie
				return errors.New("container process is already dead")
			}
			if time.Now().After(deadline) {
				return errors.New("container init did not take the start signal")
			}
		}
	}
}
