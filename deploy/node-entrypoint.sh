#!/bin/sh
# niwa-node: the entrypoint of a node container of the docker-compose cluster (busybox sh).
# Runs niwa-kubelet (process runtime; pod IPs as /32s on eth0) and niwa-proxy (Service
# ClusterIPs on this container's own loopback, as kube-proxy's rules are per node), stops both on
# SIGTERM, and exits when either exits so that docker sees a dead node. PID 1 is docker-init
# (`init: true`), which reaps the containers' shims.
#
# Environment: NODE_NAME, POD_CIDR (172.31.(100+N).0/24); NODE_IP (default: eth0's address);
# NIWA_APISERVER (default http://172.31.0.3:6443); NIWA_NODE_ARGS (extra kubelet flags).
set -eu
: "${NODE_NAME:?set NODE_NAME}" "${POD_CIDR:?set POD_CIDR}"
if [ -z "${NODE_IP:-}" ]; then
  NODE_IP=$(ip -4 -o addr show dev eth0 | sed -n 's/.* inet \([0-9.]*\)\/.*/\1/p' | head -n 1)
fi
API=${NIWA_APISERVER:-http://172.31.0.3:6443}
mkdir -p /var/lib/niwa/kubelet

# shellcheck disable=SC2086 # NIWA_NODE_ARGS is a list of flags
niwa-kubelet --apiserver "$API" --node-name "$NODE_NAME" --node-ip "$NODE_IP" \
  --pod-cidr "$POD_CIDR" --pod-ip-interface eth0 --runtime process \
  --root-dir /var/lib/niwa/kubelet --cluster-dns 127.96.0.10 --healthz-port 10248 \
  ${NIWA_NODE_ARGS:-} &
kubelet=$!
niwa-proxy --apiserver "$API" --node-name "$NODE_NAME" --node-ip "$NODE_IP" \
  --metrics-listen "$NODE_IP:10249" &
proxy=$!

stopping=0
stop() {
  kill -TERM "$kubelet" "$proxy" 2>/dev/null || true
}
trap 'stopping=1; stop' TERM INT
while kill -0 "$kubelet" 2>/dev/null && kill -0 "$proxy" 2>/dev/null; do
  sleep 1
done
stop
wait || true
# A daemon that died on its own is a failed node; a stop asked for is not.
[ "$stopping" = 1 ]
