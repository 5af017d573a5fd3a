#!/usr/bin/env bash
# make demo: Meeting on the local cluster of hack/local-cluster.sh, end to end.
#   1. starts the local cluster (KWOK nodes: pods become Ready, no container runs);
#   2. installs the chart (helm upgrade --install --wait) in meeting-system;
#   3. runs the operator as a process on this machine, with the arguments of the
#      chart's operator Deployment and the token of its ServiceAccount (the chart's
#      own operator pod is a fake one that runs nothing);
#   4. applies config/samples/ with beginAt 20 s from now and shows
#      `kubectl get mtg -w` until the Meeting is Running (SFU and TURN rolled out).
# It stops the operator process when it ends; the cluster keeps running. Tear down
# with `hack/local-cluster.sh down`. DEMO_NAMESPACE, DEMO_RELEASE change the names.
set -euo pipefail
cd "$(dirname "$0")/.."
. hack/lib.sh

ns=${DEMO_NAMESPACE:-meeting-system}
rel=${DEMO_RELEASE:-meeting}
start=$(date +%s)

log "local cluster (hack/local-cluster.sh up)"
kc=$(hack/local-cluster.sh up | tail -n 1)
[ -f "$kc" ] || { log "hack/local-cluster.sh up printed no kubeconfig: $kc"; exit 1; }
export KUBECONFIG=$kc
bin=$(hack/install-k8s-tools.sh helm kubectl)
kubectl() { "$bin/kubectl" "$@"; }
helm() { "$bin/helm" "$@"; }
work=$(dirname "$kc")/demo
mkdir -p "$work"

log "the meeting binary (bin/meeting, for the operator process)"
CGO_ENABLED=0 go build -o bin/meeting ./cmd/meeting

log "helm upgrade --install $rel charts/meeting -n $ns --wait"
# Short lead time and grace so that the phases move within a minute; no storage
# provisioner on the local cluster, so the bundled MariaDB keeps its data in an emptyDir.
helm upgrade --install "$rel" charts/meeting -n "$ns" --create-namespace --wait --timeout 5m \
  --set mariadb.persistence.enabled=false \
  --set media.leadTime=10s --set media.endGrace=10s >&2
kubectl -n "$ns" get deploy,statefulset,svc >&2

log "the operator as a process, with the chart's arguments and ServiceAccount"
deploy=$(kubectl -n "$ns" get deploy -l app.kubernetes.io/instance="$rel",app.kubernetes.io/component=operator -o name)
sa=$(kubectl -n "$ns" get "$deploy" -o jsonpath='{.spec.template.spec.serviceAccountName}')
mapfile -t args < <(kubectl -n "$ns" get "$deploy" -o go-template='{{range (index .spec.template.spec.containers 0).args}}{{.}}{{"\n"}}{{end}}' |
  sed -e 's/^--metrics-addr=.*/--metrics-addr=0/' -e 's/^--health-addr=.*/--health-addr=0/')
token=$(kubectl -n "$ns" create token "$sa" --duration=2h)
sakc=$work/operator.kubeconfig
cp "$kc" "$sakc"
chmod 600 "$sakc"
user=$(kubectl --kubeconfig "$sakc" config view -o jsonpath='{.contexts[0].context.user}')
kubectl --kubeconfig "$sakc" config unset "users.$user" >/dev/null
kubectl --kubeconfig "$sakc" config set-credentials "$user" --token="$token" >/dev/null
bin/meeting "${args[@]}" --leader-election-namespace="$ns" --kubeconfig="$sakc" >"$work/operator.log" 2>&1 &
operator=$!
watch=
cleanup() {
  [ -n "$watch" ] && kill "$watch" 2>/dev/null || true
  kill "$operator" 2>/dev/null && wait "$operator" 2>/dev/null || true
}
trap cleanup EXIT

log "config/samples/ with its times set to now: begins in 20 s, ends in an hour"
name=$(sed -n 's/^  name: //p' config/samples/rtc_v1alpha1_meeting.yaml | head -n 1)
kubectl -n "$ns" delete mtg "$name" --ignore-not-found --wait >&2
begin=$(date -u -d '+20 seconds' +%Y-%m-%dT%H:%M:%SZ)
end=$(date -u -d '+1 hour' +%Y-%m-%dT%H:%M:%SZ)
sed -e "s/^  beginAt: .*/  beginAt: \"$begin\"/" -e "s/^  endAt: .*/  endAt: \"$end\"/" \
  -e "s/^  identity: .*/  identity: $name-$(date -u +%Y%m%d%H%M%S)/" config/samples/rtc_v1alpha1_meeting.yaml |
  kubectl -n "$ns" apply -f - >&2

echo "\$ kubectl -n $ns get mtg -w"
kubectl -n "$ns" get mtg -w &
watch=$!
for _ in $(seq 1 180); do
  [ "$(kubectl -n "$ns" get mtg "$name" -o jsonpath='{.status.phase}')" = Running ] && break
  sleep 1
done
sleep 1
kill "$watch" 2>/dev/null || true
wait "$watch" 2>/dev/null || true
watch=
phase=$(kubectl -n "$ns" get mtg "$name" -o jsonpath='{.status.phase}')
if [ "$phase" != Running ]; then
  log "the Meeting did not reach Running (phase $phase); operator log: $work/operator.log"
  tail -n 20 "$work/operator.log" >&2
  exit 1
fi
kubectl -n "$ns" get deploy,svc -l rtc.meeting.dev/meeting="$name"
kubectl -n "$ns" get mtg "$name" -o jsonpath='signalURL: {.status.signalURL}{"\n"}turnURIs:  {.status.turnURIs}{"\n"}'
cat <<MSG

Demo done in $(( $(date +%s) - start ))s. The operator process has stopped (its log: $work/operator.log);
the cluster and the release keep running:
  export KUBECONFIG=$kc
  $bin/helm -n $ns status $rel
  $bin/helm -n $ns uninstall $rel      # remove the release (the CRD and Meetings stay, docs/helm.md)
  hack/local-cluster.sh down            # stop the cluster (its state stays for the next up)
MSG
