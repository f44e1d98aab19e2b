package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/berth-project/berth/internal/pki"
)

type agentConfig struct {
	node             nodeConfig
	server           string
	token, tokenFile string
}

func agentCmd() *cobra.Command {
	var c agentConfig
	cmd := &cobra.Command{
		Use:   "agent",
		Short: "Join this machine to a cluster as a node: the kubelet and the container engine",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runAgent(cmd.Context(), c)
		},
	}
	f := cmd.Flags()
	f.StringVar(&c.server, "server", "", "the cluster's API server (https://HOST:PORT)")
	f.StringVar(&c.token, "token", "", "the cluster's join token (the server's DATA-DIR/node-token)")
	f.StringVar(&c.tokenFile, "token-file", "", "a file holding the join token")
	f.StringVar(&c.node.dataDir, "data-dir", "/var/lib/berth/agent", "where the node keeps its engine, pods and credentials")
	f.StringVar(&c.node.runDir, "run-dir", "/run/berth", "where sockets (docker.sock, cri.sock) and run-time state are kept")
	f.StringVar(&c.node.nodeName, "node-name", "", "this node's name (default: the host name)")
	f.StringVar(&c.node.clusterCIDR, "cluster-cidr", "10.42.0.0/16", "the cluster's pod network")
	c.node.flags(f)
	return cmd
}

func runAgent(parent context.Context, c agentConfig) error {
	if parent == nil {
		parent = context.Background()
	}
	ctx, stop := signal.NotifyContext(parent, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	log := logger()
	if c.server == "" {
		return errors.New("--server is required")
	}
	c.server = strings.TrimSuffix(c.server, "/")
	if c.node.nodeName == "" {
		h, err := os.Hostname()
		if err != nil {
			return err
		}
		c.node.nodeName = strings.ToLower(h)
	}
	for _, d := range []string{c.node.dataDir, c.node.runDir} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return err
		}
	}
	creds, err := agentCredentials(ctx, c)
	if err != nil {
		return err
	}
	return runNode(ctx, log, c.node, creds, c.server)
}

// agentCredentials are the node's certificates: kept from an earlier join, or got now
// with the join token.
func agentCredentials(ctx context.Context, c agentConfig) (pki.NodeCredentials, error) {
	path := filepath.Join(c.node.dataDir, "credentials.json")
	var creds pki.NodeCredentials
	if data, err := os.ReadFile(path); err == nil {
		if err := json.Unmarshal(data, &creds); err == nil {
			return creds, nil
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return creds, err
	}
	token := c.token
	if c.tokenFile != "" {
		data, err := os.ReadFile(c.tokenFile)
		if err != nil {
			return creds, fmt.Errorf("token file: %w", err)
		}
		token = strings.TrimSpace(string(data))
	}
	if token == "" {
		return creds, errors.New("--token or --token-file is required to join")
	}
	creds, err := pki.Join(ctx, c.server, token, c.node.nodeName, nodeAddresses(c.node))
	if err != nil {
		return creds, fmt.Errorf("join %s: %w", c.server, err)
	}
	data, _ := json.Marshal(creds)
	return creds, os.WriteFile(path, data, 0o600)
}
