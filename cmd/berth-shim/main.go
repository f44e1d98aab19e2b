// Command berth-shim supervises one running container (see internal/engine/runtime/shim).
// One runs per container for as long as it runs, so it is kept small: berth-runtime
// creates the container and execs this binary in its place, handing over the
// container's stdio and the engine's socket as inherited descriptors.
//
// "berth-shim pause" is a pod sandbox's infra process instead (see pause.go).
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/berth-project/berth/internal/engine/runtime/shim"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "pause" {
		pause(os.Args[2:])
		return
	}
	var o shim.Options
	fds := map[string]*int{}
	fs := flag.NewFlagSet("berth-shim", flag.ExitOnError)
	fs.StringVar(&o.ID, "id", "", "container id")
	fs.StringVar(&o.Bundle, "bundle", "", "directory with config.json")
	fs.StringVar(&o.Root, "root", "", "libcontainer state root")
	fs.StringVar(&o.LogPath, "log", "", "json-file log path")
	fs.StringVar(&o.CRILog, "cri-log", "", "CRI log path (a pod's container)")
	fs.StringVar(&o.Runtime, "runtime", "", "berth-runtime, for requests that need libcontainer")
	fs.BoolVar(&o.StdinOnce, "stdin-once", false, "close stdin when the first attached client detaches")
	fs.IntVar(&o.Pid, "pid", 0, "the container's init (our child)")
	for _, name := range []string{"listen", "ready", "stdout", "stderr", "stdin", "console"} {
		fds[name] = fs.Int(name+"-fd", -1, "inherited descriptor")
	}
	fs.Parse(os.Args[1:])
	file := func(name string) *os.File {
		if fd := *fds[name]; fd >= 0 {
			return os.NewFile(uintptr(fd), name)
		}
		return nil
	}
	o.Listener, o.Ready = file("listen"), file("ready")
	o.Stdout, o.Stderr, o.Stdin, o.Console = file("stdout"), file("stderr"), file("stdin"), file("console")
	if o.ID == "" || o.Pid == 0 || o.Listener == nil || o.Runtime == "" {
		fmt.Fprintln(os.Stderr, "berth-shim is started by berth-runtime create, not by hand")
		os.Exit(2)
	}
	if err := shim.Run(o); err != nil {
		fmt.Fprintln(os.Stderr, "berth-shim:", err)
		os.Exit(1)
	}
}
