package main

import (
	"flag"
	"os"
	"os/signal"

	"golang.org/x/sys/unix"
)

// pause is the infra process of a pod sandbox (see runtime.StartInfra): it sets the
// hostname of its new UTS namespace, says "ok" on fd 3, and then only holds its
// namespaces. As the init of a pod's shared PID namespace it reaps orphans; SIGTERM
// and SIGINT end it.
func pause(args []string) {
	fs := flag.NewFlagSet("pause", flag.ExitOnError)
	hostname := fs.String("hostname", "", "hostname of the pod's UTS namespace")
	fs.Parse(args)
	ready := os.NewFile(3, "ready")
	if *hostname != "" {
		if err := unix.Sethostname([]byte(*hostname)); err != nil {
			ready.WriteString("sethostname: " + err.Error() + "\n")
			os.Exit(1)
		}
	}
	sigs := make(chan os.Signal, 16)
	signal.Notify(sigs, unix.SIGCHLD, unix.SIGTERM, unix.SIGINT)
	ready.WriteString("ok\n")
	ready.Close()
	for s := range sigs {
		if s != unix.SIGCHLD {
			os.Exit(0)
		}
		for {
			pid, err := unix.Wait4(-1, nil, unix.WNOHANG, nil)
			if pid <= 0 || err != nil {
				break
			}
		}
	}
}
