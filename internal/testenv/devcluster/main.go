// Command devcluster runs a local Kubernetes control plane (kube-apiserver and
// etcd from KUBEBUILDER_ASSETS, with the Meeting CRD installed) until
// interrupted, and writes an administrator kubeconfig, so that the operator
// and kubectl can be tried without a cluster:
//
//	export KUBEBUILDER_ASSETS=$(hack/install-k8s-tools.sh)
//	go run ./internal/testenv/devcluster --kubeconfig /tmp/meeting.kubeconfig &
//	go run ./cmd/meeting operator --kubeconfig /tmp/meeting.kubeconfig --metrics-addr 127.0.0.1:8080 --health-addr 127.0.0.1:8081
//	kubectl --kubeconfig /tmp/meeting.kubeconfig apply -f config/samples/
//
// No kubelet or controller-manager runs: Deployments are created but start no pods.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"meeting.dev/meeting/internal/testenv"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "devcluster:", err)
		os.Exit(1)
	}
}

func run() error {
	// Its own flag set: controller-runtime registers --kubeconfig on the global one.
	fs := flag.NewFlagSet("devcluster", flag.ContinueOnError)
	kubeconfig := fs.String("kubeconfig", filepath.Join(os.TempDir(), "meeting-devcluster.kubeconfig"), "where to write the administrator kubeconfig")
	if err := fs.Parse(os.Args[1:]); err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))

	dir, err := os.MkdirTemp("", "meeting-devcluster-")
	if err != nil {
		return fmt.Errorf("temp dir: %w", err)
	}
	defer os.RemoveAll(dir)
	env, err := testenv.Start(dir)
	if err != nil {
		return err
	}
	defer func() {
		if err := env.Stop(); err != nil {
			log.Error("stop", "err", err)
		}
	}()
	data, err := os.ReadFile(env.Kubeconfig)
	if err != nil {
		return fmt.Errorf("read kubeconfig: %w", err)
	}
	if err := os.WriteFile(*kubeconfig, data, 0o600); err != nil {
		return fmt.Errorf("write kubeconfig: %w", err)
	}
	log.Info("control plane up; Ctrl-C stops it", "kubeconfig", *kubeconfig, "apiserver", env.Config.Host)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	<-ctx.Done()
	log.Info("stopping")
	return nil
}
