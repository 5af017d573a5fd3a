#!/usr/bin/env bash
# A local Kubernetes cluster without a container runtime: etcd, kube-apiserver,
# kube-controller-manager and kube-scheduler (built by hack/install-k8s-tools.sh)
# plus KWOK, which plays the kubelet of a few fake nodes: Deployments are
# scheduled, their pods become Ready (no image is pulled, no container runs),
# rollouts complete and Services get ClusterIPs. Everything listens on 127.0.0.1.
#
#   hack/local-cluster.sh up          # start it in the background (idempotent);
#                                     # the LAST stdout line is the admin kubeconfig
#   hack/local-cluster.sh down        # stop every process it started
#   hack/local-cluster.sh kubeconfig  # print the admin kubeconfig path
#   hack/local-cluster.sh status      # what runs, and whether the API server is ready
#
# State (certificates, etcd data, kubeconfigs, logs, pids) lives in
# $MEETING_CLUSTER_DIR, by default ${XDG_CACHE_HOME:-~/.cache}/meeting/local-cluster.
# `down` keeps it (the next `up` finds its objects again); remove the directory
# for a fresh cluster. LOCAL_CLUSTER_NODES sets the number of fake nodes (3);
# LOCAL_CLUSTER_TOOLS names a directory of the binaries (with kwok-stages/ beside
# it) to use instead of hack/install-k8s-tools.sh's.
set -euo pipefail

hack=$(cd "$(dirname "$0")" && pwd)
dir=${MEETING_CLUSTER_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/meeting/local-cluster}
nodes=${LOCAL_CLUSTER_NODES:-3}
# Started in this order, stopped in the reverse one.
components="etcd kube-apiserver kube-controller-manager kube-scheduler kwok"

. "$hack/lib.sh" # log, free_port
die() { log "$*"; exit 1; }

pki=$dir/pki
run=$dir/run
logs=$dir/logs
admin=$dir/admin.kubeconfig

# pid_of NAME prints the pid of the component NAME when that process is still the
# one this script started (its command line names the state directory), or fails.
pid_of() {
  local f=$run/$1.pid pid
  [ -f "$f" ] || return 1
  pid=$(cat "$f")
  [ -n "$pid" ] && running "$pid" || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$dir/" || return 1
  echo "$pid"
}

api_ready() {
  [ -f "$admin" ] && "$bin/kubectl" --kubeconfig "$admin" --request-timeout=5s get --raw /readyz >/dev/null 2>&1
}

all_running() {
  local c
  for c in $components; do pid_of "$c" >/dev/null || return 1; done
}

tools() {
  if [ -n "${LOCAL_CLUSTER_TOOLS:-}" ]; then
    bin=$LOCAL_CLUSTER_TOOLS
  else
    bin=$("$hack/install-k8s-tools.sh" etcd kube-apiserver kube-controller-manager kube-scheduler kubectl kwok)
  fi
  stages=$(dirname "$bin")/kwok-stages
  [ -f "$stages/.ready" ] || die "no KWOK stages in $stages"
}

# pki makes the cluster's CA, the API server's serving certificate, a client
# certificate for each component and the service-account signing key, once.
make_pki() {
  [ -f "$pki/.ready" ] && return 0
  rm -rf "$pki"
  mkdir -p "$pki"
  (
    cd "$pki"
    umask 077
    openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -keyout ca.key -out ca.crt \
      -subj "/CN=meeting-local-cluster-ca" >/dev/null 2>&1
    # serving certificate: the names and addresses clients (and in-cluster ones) use
    cat >apiserver.ext <<'EXT'
basicConstraints=CA:FALSE
keyUsage=digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,IP:127.0.0.1,IP:::1,IP:10.96.0.1
EXT
    cert apiserver "/CN=kube-apiserver" apiserver.ext
    printf 'basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth\n' >client.ext
    # admin: system:masters. The controller manager and the scheduler: the users
    # the bootstrap RBAC policy grants their roles to. KWOK writes node and pod
    # status for every fake node, which no narrower built-in role allows: it is
    # bound to its own ClusterRole at `up`.
    cert admin "/O=system:masters/CN=meeting-local-admin" client.ext
    cert kube-controller-manager "/CN=system:kube-controller-manager" client.ext
    cert kube-scheduler "/CN=system:kube-scheduler" client.ext
    cert kwok "/CN=meeting-local-kwok" client.ext
    openssl genrsa -out sa.key 2048 >/dev/null 2>&1
    openssl rsa -in sa.key -pubout -out sa.pub >/dev/null 2>&1
    rm -f ./*.csr ./*.ext ca.srl
    touch .ready
  )
}

cert() { # cert NAME SUBJECT EXTFILE (in $pki)
  openssl req -newkey rsa:2048 -nodes -keyout "$1.key" -out "$1.csr" -subj "$2" >/dev/null 2>&1
  openssl x509 -req -in "$1.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -days 3650 \
    -extfile "$3" -out "$1.crt" >/dev/null 2>&1
}

kubeconfig_for() { # kubeconfig_for NAME FILE
  local kc=$2
  rm -f "$kc"
  (
    umask 077
    "$bin/kubectl" config --kubeconfig "$kc" set-cluster local --server "https://127.0.0.1:$api_port" \
      --certificate-authority "$pki/ca.crt" --embed-certs >/dev/null
    "$bin/kubectl" config --kubeconfig "$kc" set-credentials "$1" \
      --client-certificate "$pki/$1.crt" --client-key "$pki/$1.key" --embed-certs >/dev/null
    "$bin/kubectl" config --kubeconfig "$kc" set-context local --cluster local --user "$1" >/dev/null
    "$bin/kubectl" config --kubeconfig "$kc" use-context local >/dev/null
  )
}

start() { # start NAME ARGS...: in the background, in its own session, logs to logs/NAME.log
  local name=$1; shift
  # setsid: the component outlives this script and the caller's terminal or test.
  setsid "$@" </dev/null >>"$logs/$name.log" 2>&1 &
  echo $! >"$run/$name.pid"
}

wait_for() { # wait_for WHAT SECONDS COMMAND...
  local what=$1 secs=$2 i; shift 2
  for i in $(seq 1 $((secs * 4))); do
    "$@" && return 0
    sleep 0.25
  done
  die "$what not ready after ${secs}s (logs in $logs)"
}

alive() { # alive NAME: the component still runs (else show the end of its log)
  pid_of "$1" >/dev/null && return 0
  log "$1 exited; the end of $logs/$1.log:"
  tail -n 20 "$logs/$1.log" >&2 || true
  exit 1
}

healthz() { # healthz NAME PORT: its /healthz over HTTPS answers ok
  alive "$1"
  curl -fsk --max-time 2 "https://127.0.0.1:$2/healthz" 2>/dev/null | grep -qx ok
}

up() {
  local c
  for c in openssl curl setsid; do
    command -v "$c" >/dev/null || die "$c is needed: apt-get install openssl curl util-linux"
  done
  tools
  if all_running && api_ready; then
    log "local cluster already running ($dir)"
    echo "$admin"
    return 0
  fi
  # Some part is missing: stop what is left and start all again (the data stays).
  down_quiet
  mkdir -p "$run" "$logs" "$dir/etcd"
  make_pki
  local etcd_port etcd_peer kcm_port sched_port
  # Each component is checked to have bound its port (wait_for), so a lost race fails loudly.
  port() { free_port || die "no free port on 127.0.0.1"; }
  etcd_port=$(port); etcd_peer=$(port); api_port=$(port)
  kcm_port=$(port); sched_port=$(port)
  printf 'api_port=%s\netcd_port=%s\n' "$api_port" "$etcd_port" >"$dir/ports"
  log "starting the local cluster in $dir (API server https://127.0.0.1:$api_port)"

  start etcd "$bin/etcd" --name local --data-dir "$dir/etcd" \
    --listen-client-urls "http://127.0.0.1:$etcd_port" --advertise-client-urls "http://127.0.0.1:$etcd_port" \
    --listen-peer-urls "http://127.0.0.1:$etcd_peer" --initial-advertise-peer-urls "http://127.0.0.1:$etcd_peer" \
    --initial-cluster "local=http://127.0.0.1:$etcd_peer" --log-level warn
  etcd_ok() { alive etcd; curl -fs --max-time 2 "http://127.0.0.1:$etcd_port/health" 2>/dev/null | grep -q '"health":"true"'; }
  wait_for etcd 30 etcd_ok

  kubeconfig_for admin "$admin"
  start kube-apiserver "$bin/kube-apiserver" \
    --etcd-servers "http://127.0.0.1:$etcd_port" \
    --bind-address 127.0.0.1 --advertise-address 127.0.0.1 --secure-port "$api_port" \
    --cert-dir "$dir/apiserver-certs" \
    --tls-cert-file "$pki/apiserver.crt" --tls-private-key-file "$pki/apiserver.key" \
    --client-ca-file "$pki/ca.crt" \
    --authorization-mode Node,RBAC --anonymous-auth=false \
    --service-account-issuer https://kubernetes.default.svc.cluster.local \
    --service-account-key-file "$pki/sa.pub" --service-account-signing-key-file "$pki/sa.key" \
    --service-cluster-ip-range 10.96.0.0/16 \
    --endpoint-reconciler-type none \
    --profiling=false
  api_ok() { alive kube-apiserver; api_ready; }
  wait_for kube-apiserver 90 api_ok

  kubeconfig_for kube-controller-manager "$dir/kube-controller-manager.kubeconfig"
  start kube-controller-manager "$bin/kube-controller-manager" \
    --kubeconfig "$dir/kube-controller-manager.kubeconfig" \
    --authentication-kubeconfig "$dir/kube-controller-manager.kubeconfig" \
    --authorization-kubeconfig "$dir/kube-controller-manager.kubeconfig" \
    --bind-address 127.0.0.1 --secure-port "$kcm_port" --cert-dir "$dir/kcm-certs" \
    --controllers '*' --use-service-account-credentials \
    --service-account-private-key-file "$pki/sa.key" --root-ca-file "$pki/ca.crt" \
    --cluster-signing-cert-file "$pki/ca.crt" --cluster-signing-key-file "$pki/ca.key" \
    --leader-elect=false --profiling=false
  kubeconfig_for kube-scheduler "$dir/kube-scheduler.kubeconfig"
  start kube-scheduler "$bin/kube-scheduler" \
    --kubeconfig "$dir/kube-scheduler.kubeconfig" \
    --authentication-kubeconfig "$dir/kube-scheduler.kubeconfig" \
    --authorization-kubeconfig "$dir/kube-scheduler.kubeconfig" \
    --bind-address 127.0.0.1 --secure-port "$sched_port" --cert-dir "$dir/scheduler-certs" \
    --leader-elect=false --profiling=false

  # KWOK's rights: the status of nodes and pods, their deletion, node leases, events.
  "$bin/kubectl" --kubeconfig "$admin" apply -f - >/dev/null <<'YAML'
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: meeting-local-kwok
rules:
- apiGroups: [""]
  resources: [nodes, pods]
  verbs: [get, list, watch, patch, update, delete]
- apiGroups: [""]
  resources: [nodes/status, pods/status]
  verbs: [get, patch, update]
- apiGroups: [coordination.k8s.io]
  resources: [leases]
  verbs: [get, list, watch, create, update, patch, delete]
- apiGroups: ["", events.k8s.io]
  resources: [events]
  verbs: [create, patch, update]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: meeting-local-kwok
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: ClusterRole
  name: meeting-local-kwok
subjects:
- apiGroup: rbac.authorization.k8s.io
  kind: User
  name: meeting-local-kwok
YAML
  kubeconfig_for kwok "$dir/kwok.kubeconfig"
  local config=() f
  for f in "$stages"/*.yaml; do config+=(--config "$f"); done
  # The heartbeat stage writes a node's status only every 10 minutes and
  # leaves its liveness to its Lease, which KWOK keeps only when given a
  # duration: without Leases every node turned NotReady each
  # node-monitor-grace-period (50 s), which marked its pods NotReady for good.
  start kwok "$bin/kwok" --kubeconfig "$dir/kwok.kubeconfig" "${config[@]}" \
    --manage-all-nodes=true --cidr 10.244.0.0/16 --node-ip 127.0.0.1 \
    --node-lease-duration-seconds 40

  # The fake nodes, as KWOK documents them: it manages every node (--manage-all-nodes).
  local i manifest=
  for i in $(seq 0 $((nodes - 1))); do
    manifest+="---
apiVersion: v1
kind: Node
metadata:
  name: kwok-node-$i
  annotations:
    kwok.x-k8s.io/node: fake
    node.alpha.kubernetes.io/ttl: \"0\"
  labels:
    kubernetes.io/arch: amd64
    kubernetes.io/os: linux
    kubernetes.io/hostname: kwok-node-$i
    type: kwok
status:
  allocatable: {cpu: \"16\", memory: 64Gi, pods: \"110\"}
  capacity: {cpu: \"16\", memory: 64Gi, pods: \"110\"}
  nodeInfo: {architecture: amd64, operatingSystem: linux, kubeletVersion: fake, kubeProxyVersion: fake}
"
  done
  printf '%s' "$manifest" | "$bin/kubectl" --kubeconfig "$admin" apply -f - >/dev/null

  wait_for kube-controller-manager 60 healthz kube-controller-manager "$kcm_port"
  wait_for kube-scheduler 60 healthz kube-scheduler "$sched_port"
  nodes_ready() {
    alive kwok
    local n
    n=$("$bin/kubectl" --kubeconfig "$admin" get nodes -o \
      jsonpath='{range .items[*]}{.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}' 2>/dev/null | grep -c '^True$')
    [ "$n" -ge "$nodes" ]
  }
  wait_for "the fake nodes" 60 nodes_ready
  # Pods need their namespace's default ServiceAccount (the controller manager makes it).
  default_sa() { "$bin/kubectl" --kubeconfig "$admin" get serviceaccount default -n default >/dev/null 2>&1; }
  wait_for "the default ServiceAccount" 60 default_sa
  log "local cluster up: $nodes fake nodes; kubectl --kubeconfig $admin get nodes"
  echo "$admin"
}

# running PID: the process exists and has not exited (a zombie waiting for its
# parent to reap it has exited).
running() {
  kill -0 "$1" 2>/dev/null || return 1
  local state
  state=$(sed -n 's/^State:[[:space:]]*\([A-Z]\).*/\1/p' "/proc/$1/status" 2>/dev/null) || true
  [ "$state" != Z ] && [ "$state" != X ]
}

# stop every component this script started, newest first; SIGKILL after 15s
down_quiet() {
  local c pid stopped=() i
  for c in kwok kube-scheduler kube-controller-manager kube-apiserver etcd; do
    if pid=$(pid_of "$c"); then
      kill -TERM "$pid" 2>/dev/null || true
      stopped+=("$c:$pid")
    fi
  done
  for c in "${stopped[@]}"; do
    pid=${c#*:}
    local gone=
    for i in $(seq 1 60); do
      running "$pid" || { gone=1; break; }
      sleep 0.25
    done
    if [ -z "$gone" ]; then
      log "${c%%:*} did not stop in 15s: killing it"
      kill -KILL "$pid" 2>/dev/null || true
    fi
  done
  rm -f "$run"/*.pid
}

down() {
  down_quiet
  log "local cluster stopped ($dir kept; remove it for a fresh cluster)"
}

status() {
  local c pid rc=0
  for c in $components; do
    if pid=$(pid_of "$c"); then echo "$c: running (pid $pid)"; else echo "$c: stopped"; rc=1; fi
  done
  if pid_of kube-apiserver >/dev/null; then
    bin=${LOCAL_CLUSTER_TOOLS:-$("$hack/install-k8s-tools.sh" kubectl)}
    if api_ready; then
      echo "kube-apiserver: ready ($(sed -n 's/^api_port=/https:\/\/127.0.0.1:/p' "$dir/ports" 2>/dev/null))"
      "$bin/kubectl" --kubeconfig "$admin" get nodes --no-headers 2>/dev/null | sed 's/^/node: /'
    else
      echo "kube-apiserver: not ready"; rc=1
    fi
  fi
  echo "kubeconfig: $admin"
  return $rc
}

case ${1:-} in
  up) up ;;
  down) down ;;
  kubeconfig) [ -f "$admin" ] || die "no cluster in $dir: run $0 up"; echo "$admin" ;;
  status) status ;;
  *) echo "usage: $0 up|down|kubeconfig|status" >&2; exit 2 ;;
esac
