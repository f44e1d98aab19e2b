package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/berth-project/berth/internal/controller"
	"github.com/berth-project/berth/internal/pki"
	"github.com/berth-project/berth/internal/scheduler"
)

// loopbackConfig is how the components inside `berth server` reach its API: over
// HTTPS on the loopback, as one more client, with a certificate of their own.
func loopbackConfig(ca *pki.CA, pkiDir string, port int, name string) (*rest.Config, error) {
	certPEM, keyPEM, err := ca.IssueClient(pkiDir, name, "system:"+name, []string{"system:masters"})
	if err != nil {
		return nil, err
	}
	return &rest.Config{
		Host:            "https://" + net.JoinHostPort("127.0.0.1", fmt.Sprint(port)),
		TLSClientConfig: rest.TLSClientConfig{CAData: ca.CertPEM(), CertData: certPEM, KeyData: keyPEM},
		UserAgent:       "berth/" + name,
		ContentConfig:   rest.ContentConfig{ContentType: "application/vnd.kubernetes.protobuf"},
		QPS:             1000, Burst: 2000,
	}, nil
}

// startControlPlane runs the scheduler and the controllers until ctx ends; they are
// API clients like any other (DESIGN §1).
func startControlPlane(ctx context.Context, log *slog.Logger, ca *pki.CA, c serverConfig) error {
	pkiDir, port := filepath.Join(c.dataDir, "pki"), c.apiPort
	if !c.disableScheduler {
		if err := startScheduler(ctx, log, ca, pkiDir, port); err != nil {
			return err
		}
	}
	if c.disableCM {
		return nil
	}
	ctrlCfg, err := loopbackConfig(ca, pkiDir, port, "kube-controller-manager")
	if err != nil {
		return err
	}
	go func() {
		err := controller.Run(ctx, controller.Config{RESTConfig: ctrlCfg, Log: log.With("component", "controllers"), ClusterCIDR: c.clusterCIDR, NodeMonitorGracePeriod: c.nodeGrace})
		if err != nil && ctx.Err() == nil {
			log.Error("controllers stopped", "err", err)
		}
	}()
	return nil
}

func startScheduler(ctx context.Context, log *slog.Logger, ca *pki.CA, pkiDir string, port int) error {
	schedCfg, err := loopbackConfig(ca, pkiDir, port, "kube-scheduler")
	if err != nil {
		return err
	}
	// Two requests per pod (the binding and its event): the scheduler's own, higher limits.
	cs, err := kubernetes.NewForConfig(scheduler.ClientConfig(schedCfg))
	if err != nil {
		return err
	}
	go scheduler.RunElected(ctx, cs, scheduler.Options{Log: log.With("component", "scheduler")})
	return nil
}
