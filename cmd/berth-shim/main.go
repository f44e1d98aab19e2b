// Command berth-shim supervises one container (see internal/engine/runtime/shim). It is
// also the container's init: libcontainer re-executes this binary as "berth-shim init".
// It is kept small on purpose, because it is executed for every container start.
package main

import (
	"flag"
	"fmt"
	"os"
	goruntime "runtime"

	_ "github.com/opencontainers/cgroups/devices" // device cgroup rules
	"github.com/opencontainers/runc/libcontainer"
	_ "github.com/opencontainers/runc/libcontainer/nsenter"

	"github.com/berth-project/berth/internal/engine/runtime/shim"
)

func init() {
	if len(os.Args) > 1 && os.Args[1] == "init" {
		// Runs after nsenter's C constructor, before main.
		goruntime.GOMAXPROCS(1)
		goruntime.LockOSThread()
		libcontainer.Init()
	}
}

func main() {
	var o shim.Options
	fs := flag.NewFlagSet("berth-shim", flag.ExitOnError)
	fs.StringVar(&o.ID, "id", "", "container id")
	fs.StringVar(&o.Bundle, "bundle", "", "directory with config.json")
	fs.StringVar(&o.Root, "root", "", "libcontainer state root")
	fs.StringVar(&o.LogPath, "log", "", "json-file log path")
	fs.StringVar(&o.Socket, "socket", "", "unix socket to serve the engine on")
	fs.BoolVar(&o.OpenStdin, "stdin", false, "keep stdin open")
	fs.BoolVar(&o.StdinOnce, "stdin-once", false, "close stdin when the first attached client detaches")
	fs.Parse(os.Args[1:])
	if o.ID == "" || o.Bundle == "" || o.Root == "" || o.LogPath == "" || o.Socket == "" {
		fmt.Fprintln(os.Stderr, "usage: berth-shim --id ID --bundle DIR --root DIR --log FILE --socket PATH [--stdin] [--stdin-once]")
		os.Exit(2)
	}
	// fd 3 is the engine's ready pipe: the shim writes the container's pid (or an
	// error) there once the container is created.
	ready := os.NewFile(3, "ready")
	if err := shim.Run(o, ready); err != nil {
		fmt.Fprintln(os.Stderr, "berth-shim:", err)
		os.Exit(1)
	}
}
