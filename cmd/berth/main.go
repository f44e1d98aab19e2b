// Command berth is a Docker-compatible container engine and a Kubernetes-compatible
// cluster in one binary. Each subcommand lives in its own file: flags and wiring only.
package main

import (
	"fmt"
	"log/slog"
	"os"

	"github.com/spf13/cobra"
)

func main() {
	root := &cobra.Command{
		Use:           "berth",
		Short:         "A container engine and Kubernetes cluster in one binary",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(engineCmd(), registryCmd(), serverCmd(), agentCmd(), versionCmd())
	if err := root.Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "berth:", err)
		os.Exit(1)
	}
}

// logger logs to stderr at info level, or debug with BERTH_DEBUG set.
func logger() *slog.Logger {
	level := slog.LevelInfo
	if os.Getenv("BERTH_DEBUG") != "" {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
}
