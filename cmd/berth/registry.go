package main

import (
	"fmt"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/berth-project/berth/internal/registry"
)

func registryCmd() *cobra.Command {
	var cfg registry.RunConfig
	cmd := &cobra.Command{
		Use:   "registry",
		Short: "Run an OCI distribution registry (TLS, htpasswd auth, storage on disk)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var err error
			if cfg.DataDir, err = filepath.Abs(cfg.DataDir); err != nil {
				return err
			}
			cfg.Logger = logger()
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGTERM, syscall.SIGINT)
			defer stop()
			return registry.Run(ctx, cfg)
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.Addr, "addr", ":5000", "HOST:PORT to listen on")
	f.StringVar(&cfg.DataDir, "data-dir", "/var/lib/berth/registry", "where blobs, manifests and tags are kept")
	f.StringVar(&cfg.TLSCert, "tls-cert", "", "PEM certificate (chain) to serve HTTPS with")
	f.StringVar(&cfg.TLSKey, "tls-key", "", "PEM private key of --tls-cert")
	f.StringVar(&cfg.Htpasswd, "htpasswd", "", "htpasswd file (htpasswd -B or -m); every request then needs credentials")
	cmd.AddCommand(registryGCCmd())
	return cmd
}

func registryGCCmd() *cobra.Command {
	var dir string
	var opts registry.GCOptions
	cmd := &cobra.Command{
		Use:   "gc",
		Short: "Delete blobs no manifest references (the registry must be stopped)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			res, err := registry.GC(dir, opts)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			verb := "deleted"
			if opts.DryRun {
				verb = "would delete"
			}
			for _, m := range res.Manifests {
				fmt.Fprintf(out, "%s manifest %s\n", verb, m)
			}
			for _, b := range res.Blobs {
				fmt.Fprintf(out, "%s blob %s\n", verb, b)
			}
			fmt.Fprintf(out, "%s %d manifests, %d blobs (%d bytes)\n", verb, len(res.Manifests), len(res.Blobs), res.BytesFreed)
			if res.Uploads > 0 {
				fmt.Fprintf(out, "removed %d stale uploads\n", res.Uploads)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&dir, "data-dir", "/var/lib/berth/registry", "the registry's data directory")
	f.BoolVar(&opts.DeleteUntagged, "delete-untagged", false, "also delete manifests no tag reaches (their referrers are kept with kept subjects)")
	f.BoolVar(&opts.DryRun, "dry-run", false, "print what would be deleted, delete nothing")
	return cmd
}
