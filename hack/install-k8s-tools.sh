#!/usr/bin/env bash
# Builds the Kubernetes test binaries from the Go module proxy at pinned
# versions and prints the directory holding them (use it as KUBEBUILDER_ASSETS):
#   kube-apiserver, kubectl  k8s.io/kubernetes  (a throwaway module that replaces
#                            every staging module with its published version)
#   etcd                     go.etcd.io/etcd/server/v3 (a module calling etcdmain.Main)
#   helm                     helm.sh/helm/v3 (with its Kubernetes version ldflags)
#   controller-gen           sigs.k8s.io/controller-tools
#   kwok                     sigs.k8s.io/kwok (built with its own go.mod, which pins
#                            k8s.io v0.36.1), and its stage files into kwok-stages/
#                            beside bin/ (pass each with --config; only kwokctl
#                            adds them by default)
# Builds are cached under ~/.cache/meeting/k8s-tools/<versions>/bin and skipped
# when a binary is already there. Only the directory goes to stdout; logs go to
# stderr. kube-apiserver takes about 6 minutes cold on 2 cores.
#
#   hack/install-k8s-tools.sh                  # every tool
#   hack/install-k8s-tools.sh controller-gen   # only the ones named
set -euo pipefail

K8S_VERSION=${K8S_VERSION:-v1.37.2}
STAGING_VERSION=${STAGING_VERSION:-v0.37.2}
# The binaries built from k8s.io/kubernetes, in one module so that they share compiled packages.
K8S_BINARIES="kube-apiserver kubectl kube-controller-manager kube-scheduler"
ETCD_VERSION=${ETCD_VERSION:-v3.6.16}
HELM_VERSION=${HELM_VERSION:-v3.22.0}
CONTROLLER_GEN_VERSION=${CONTROLLER_GEN_VERSION:-v0.23.0}
KWOK_VERSION=${KWOK_VERSION:-v0.8.0}

log() { printf '==> %s\n' "$*" >&2; }

cache=${XDG_CACHE_HOME:-$HOME/.cache}/meeting/k8s-tools
# r2: kube-apiserver reports its minor version (r1 builds said major "1.37.2", no minor).
root=$cache/r2-k8s-$K8S_VERSION-etcd-$ETCD_VERSION-helm-$HELM_VERSION-cg-$CONTROLLER_GEN_VERSION
bin=$root/bin
src=$root/src
mkdir -p "$bin" "$src"

# Module builds must not see the caller's module or vendor settings.
export GOFLAGS=-mod=mod GOWORK=off CGO_ENABLED=0

# Each build writes to a temporary name, then renames, so an interrupted build
# never leaves a half-written binary that later runs would trust.
install_to() { # install_to NAME BUILT_FILE
  chmod +x "$2"
  mv -f "$2" "$bin/$1"
}

build_kubernetes() {
  local want=()
  for b in "$@"; do [ -x "$bin/$b" ] || want+=("$b"); done
  [ ${#want[@]} -eq 0 ] && return 0
  local dir=$src/kubernetes
  mkdir -p "$dir"
  # /version reports major and minor apart: v1.37.2 is major 1, minor 37.
  local major minor
  major=${K8S_VERSION#v}; major=${major%%.*}
  minor=${K8S_VERSION#v*.}; minor=${minor%%.*}
  log "building ${want[*]} from k8s.io/kubernetes $K8S_VERSION (cold: about 6 minutes for kube-apiserver)"
  (
    cd "$dir"
    # .ready marks a module set up completely; anything less starts over.
    if [ ! -f .ready ]; then
      rm -f go.mod go.sum k8s.json
      go mod init meeting.dev/k8s-tools/kubernetes >&2
      # k8s.io/kubernetes requires its staging modules at v0.0.0 and replaces them
      # with ./staging paths, which only count in its own build: replace each here.
      go mod download -json "k8s.io/kubernetes@$K8S_VERSION" >k8s.json
      local gomod
      gomod=$(sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",$/\1/p' k8s.json)
      [ -f "$gomod" ] || { log "no go.mod for k8s.io/kubernetes $K8S_VERSION"; exit 1; }
      local mods
      mods=$(sed -n 's#^[[:space:]]*\(k8s\.io/[A-Za-z0-9._-]*\) => \./staging/src/.*#\1#p' "$gomod" | sort -u)
      [ -n "$mods" ] || { log "found no staging replacements in $gomod"; exit 1; }
      for m in $mods; do go mod edit -replace "$m=$m@$STAGING_VERSION"; done
      go mod edit -require "k8s.io/kubernetes@$K8S_VERSION"
      local b pkgs=()
      for b in $K8S_BINARIES; do pkgs+=("k8s.io/kubernetes/cmd/$b@$K8S_VERSION"); done
      go get "${pkgs[@]}" >&2
      touch .ready
    fi
    for b in "${want[@]}"; do
      go build -trimpath -ldflags "-s -w \
        -X k8s.io/component-base/version.gitVersion=$K8S_VERSION \
        -X k8s.io/component-base/version.gitMajor=$major \
        -X k8s.io/component-base/version.gitMinor=$minor \
        -X k8s.io/client-go/pkg/version.gitVersion=$K8S_VERSION" \
        -o "$bin/.$b.tmp" "k8s.io/kubernetes/cmd/$b" >&2
      install_to "$b" "$bin/.$b.tmp"
    done
  )
}

build_etcd() {
  [ -x "$bin/etcd" ] && return 0
  local dir=$src/etcd
  mkdir -p "$dir"
  log "building etcd $ETCD_VERSION"
  if ! (
    cd "$dir"
    if [ ! -f .ready ]; then
      rm -f go.mod go.sum main.go
      go mod init meeting.dev/k8s-tools/etcd >&2
      cat >main.go <<'GO'
// Command etcd runs the etcd server (etcdmain.Main), for envtest.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
GO
      go get "go.etcd.io/etcd/server/v3@$ETCD_VERSION" >&2
      touch .ready
    fi
    go build -trimpath -ldflags "-s -w" -o "$bin/.etcd.tmp" . >&2
  ); then
    # Debian's etcd-server works with envtest too.
    log "etcd build failed; falling back to Debian's etcd-server"
    if ! command -v etcd >/dev/null && [ ! -x /usr/bin/etcd ]; then
      local sudo=; [ "$(id -u)" = 0 ] || sudo=sudo
      $sudo apt-get update -qq >&2
      $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends etcd-server >&2
    fi
    ln -sf "$(command -v etcd || echo /usr/bin/etcd)" "$bin/etcd"
    return 0
  fi
  install_to etcd "$bin/.etcd.tmp"
}

build_helm() {
  [ -x "$bin/helm" ] && return 0
  log "building helm $HELM_VERSION"
  local minor=${STAGING_VERSION#v0.}; minor=${minor%%.*}
  local tmp; tmp=$(mktemp -d "$bin/.helm.XXXXXX")
  GOBIN=$tmp go install -trimpath -ldflags "-s -w \
    -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION \
    -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=1 \
    -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=$minor \
    -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1 \
    -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=$minor" \
    "helm.sh/helm/v3/cmd/helm@$HELM_VERSION" >&2
  install_to helm "$tmp/helm"
  rmdir "$tmp"
}

build_controller_gen() {
  [ -x "$bin/controller-gen" ] && return 0
  log "building controller-gen $CONTROLLER_GEN_VERSION"
  local tmp; tmp=$(mktemp -d "$bin/.cg.XXXXXX")
  GOBIN=$tmp go install -trimpath -ldflags "-s -w" \
    "sigs.k8s.io/controller-tools/cmd/controller-gen@$CONTROLLER_GEN_VERSION" >&2
  install_to controller-gen "$tmp/controller-gen"
  rmdir "$tmp"
}

# kwok is built by `go install module@version`, so with kwok's own go.mod (its
# k8s.io v0.36.1 pins), not in the kubernetes module above. The stages that make
# fake nodes Ready, keep their leases, and make pods Ready, complete and go away
# are copied from the module into $root/kwok-stages, a stable path for --config.
KWOK_STAGES="node/fast/node-initialize.yaml node/heartbeat-with-lease/node-heartbeat-with-lease.yaml
pod/fast/pod-ready.yaml pod/fast/pod-complete.yaml pod/fast/pod-delete.yaml"
build_kwok() {
  local stages=$root/kwok-stages
  if [ -x "$bin/kwok" ] && [ -f "$stages/.ready" ]; then return 0; fi
  log "building kwok $KWOK_VERSION"
  local tmp; tmp=$(mktemp -d "$bin/.kwok.XXXXXX")
  if ! GOBIN=$tmp go install -trimpath -ldflags "-s -w -X sigs.k8s.io/kwok/pkg/consts.Version=$KWOK_VERSION" \
    "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION" >&2; then
    rm -rf "$tmp"
    return 1
  fi
  local dir
  dir=$(go mod download -json "sigs.k8s.io/kwok@$KWOK_VERSION" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
  [ -d "$dir/kustomize/stage" ] || { log "no kustomize/stage in sigs.k8s.io/kwok@$KWOK_VERSION"; rm -rf "$tmp"; return 1; }
  rm -rf "$stages.tmp"
  mkdir -p "$stages.tmp"
  local f
  for f in $KWOK_STAGES; do
    cp "$dir/kustomize/stage/$f" "$stages.tmp/" || { rm -rf "$tmp" "$stages.tmp"; return 1; }
  done
  chmod 644 "$stages.tmp"/*.yaml
  touch "$stages.tmp/.ready"
  rm -rf "$stages"
  mv "$stages.tmp" "$stages"
  install_to kwok "$tmp/kwok"
  rmdir "$tmp"
}

# Arguments choose tools (controller-gen, etcd, helm, kube-apiserver, kubectl, kwok, ...);
# none builds them all. Small tools first, so a caller is not held up for long.
if [ $# -eq 0 ]; then set -- controller-gen etcd helm kwok $K8S_BINARIES; fi
# One run at a time: builds share the source directories above (go.mod is rewritten there).
exec 9>"$root/.lock"
flock 9
# Whatever way a build fails or is interrupted, its temporaries (.NAME.tmp files,
# .NAME.XXXXXX directories of go install) go: only complete binaries stay in bin/.
# Safe under the lock: no other run is writing there.
trap 'rm -rf "$bin"/.[!.]* "$root/kwok-stages.tmp"' EXIT
for tool in "$@"; do
  case $tool in
    controller-gen) build_controller_gen ;;
    etcd) build_etcd ;;
    helm) build_helm ;;
    kwok) build_kwok ;;
    kube-apiserver|kubectl|kube-controller-manager|kube-scheduler) build_kubernetes "$tool" ;;
    *) log "unknown tool $tool (want controller-gen, etcd, helm, kwok, $K8S_BINARIES)"; exit 2 ;;
  esac
done

echo "$bin"
