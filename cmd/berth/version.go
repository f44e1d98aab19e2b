package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/berth-project/berth/internal/version"
)

func versionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version and the API versions Berth speaks",
		Args:  cobra.NoArgs,
		Run: func(cmd *cobra.Command, _ []string) {
			fmt.Fprintf(cmd.OutOrStdout(), "Berth %s\nDocker API: %s\nKubernetes: %s\n", version.Version, version.DockerAPI, version.Kubernetes)
		},
	}
}
