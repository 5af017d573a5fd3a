// Package testenv starts a real Kubernetes control plane (kube-apiserver and
// etcd, through controller-runtime's envtest) with the Meeting CRD installed,
// for tests. The binaries come from KUBEBUILDER_ASSETS, which hack/test.sh
// sets from hack/install-k8s-tools.sh.
package testenv

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"

	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// AssetsVar names the directory of kube-apiserver, etcd and kubectl.
const AssetsVar = "KUBEBUILDER_ASSETS"

// ErrNoAssets says how to get the control plane binaries.
var ErrNoAssets = errors.New(AssetsVar + " is not set: run the tests through hack/test.sh, " +
	"or export " + AssetsVar + "=$(hack/install-k8s-tools.sh)")

// Env is a running control plane.
type Env struct {
	env *envtest.Environment
	// Config reaches the API server as an administrator.
	Config *rest.Config
	// Kubeconfig is a kubeconfig file for the same administrator, for kubectl
	// and for processes started by the test.
	Kubeconfig string
	// Assets is the directory holding kube-apiserver, etcd, kubectl and helm.
	Assets string
	// Root is the repository's root directory.
	Root string
}

// Root returns the repository's root directory.
func Root() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// Start starts kube-apiserver and etcd with the CRDs of config/crd/bases
// installed and writes a kubeconfig into dir. Stop it with Stop.
func Start(dir string) (*Env, error) {
	assets := os.Getenv(AssetsVar)
	if assets == "" {
		return nil, ErrNoAssets
	}
	for _, b := range []string{"kube-apiserver", "etcd"} {
		if _, err := os.Stat(filepath.Join(assets, b)); err != nil {
			return nil, fmt.Errorf("%s in %s=%s: %w (run hack/install-k8s-tools.sh)", b, AssetsVar, assets, err)
		}
	}
	root := Root()
	env := &envtest.Environment{
		BinaryAssetsDirectory: assets,
		CRDDirectoryPaths:     []string{filepath.Join(root, "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
	}
	// envtest's default Service range (a /24) holds 254 Services; the
	// benchmark creates 2,000. Addresses are only allocated, never used.
	env.ControlPlane.GetAPIServer().Configure().Set("service-cluster-ip-range", "10.0.0.0/16")
	cfg, err := env.Start()
	if err != nil {
		return nil, fmt.Errorf("start envtest: %w", err)
	}
	e := &Env{env: env, Config: cfg, Assets: assets, Root: root}
	user, err := env.AddUser(envtest.User{Name: "meeting-admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		_ = env.Stop()
		return nil, fmt.Errorf("envtest admin user: %w", err)
	}
	kc, err := user.KubeConfig()
	if err != nil {
		_ = env.Stop()
		return nil, fmt.Errorf("envtest kubeconfig: %w", err)
	}
	e.Kubeconfig = filepath.Join(dir, "kubeconfig")
	if err := os.WriteFile(e.Kubeconfig, kc, 0o600); err != nil {
		_ = env.Stop()
		return nil, fmt.Errorf("write kubeconfig: %w", err)
	}
	return e, nil
}

// Stop stops the control plane.
func (e *Env) Stop() error {
	if err := e.env.Stop(); err != nil {
		return fmt.Errorf("stop envtest: %w", err)
	}
	return nil
}

// Tool returns the path of a binary in the assets directory (kubectl, helm).
func (e *Env) Tool(name string) (string, error) {
	p := filepath.Join(e.Assets, name)
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("%s not in %s: %w (run hack/install-k8s-tools.sh)", name, e.Assets, err)
	}
	return p, nil
}
