package runtime

import (
	"errors"
	"os"
	"path/filepath"
	"time"
)

// Release lets the created container's process begin: libcontainer's init waits until
// its exec fifo (in the container's state dir) is opened for reading and a byte read
// from it, then executes the process. Unlike libcontainer's Exec, this does not wait
// for the process's exec to finish; the fifo goes, as with Exec, so that the container
// counts as running.
func Release(stateDir string) error {
	fifo := filepath.Join(stateDir, "exec.fifo")
	opened := make(chan error, 1)
	go func() {
		f, err := os.OpenFile(fifo, os.O_RDONLY, 0)
		if err == nil {
			var b [1]byte
			_, err = f.Read(b[:])
			f.Close()
		}
		opened <- err
	}()
	select {
	case err := <-opened:
		os.Remove(fifo)
		return err
	case <-time.After(10 * time.Second):
		return errors.New("container init did not take the start signal")
	}
}
