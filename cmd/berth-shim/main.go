// Command berth-shim supervises one running container (see internal/engine/runtime/shim).
// One runs per container for as long as it runs, so it is kept small. The engine
// starts it ahead of need as "berth-shim standby", which starts berth-runtime; that
// makes the container and hands over its stdio and the engine's socket.
//
// "berth-shim pause" is a pod sandbox's infra process instead (see pause.go).
package main

import (
	"fmt"
	"os"

	"github.com/berth-project/berth/internal/engine/runtime/shim"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "pause" {
		pause(os.Args[2:])
		return
	}
	if len(os.Args) < 2 || os.Args[1] != "standby" {
		fmt.Fprintln(os.Stderr, "berth-shim is started by the engine, not by hand")
		os.Exit(2)
	}
	if err := shim.Standby(); err != nil {
		fmt.Fprintln(os.Stderr, "berth-shim:", err)
		os.Exit(1)
	}
}
