#!/usr/bin/env bash
# Starts a local 3-node NATS JetStream cluster on loopback for development
# and for running hubs over it (`tributary serve --engine ...`). Foreground:
# Ctrl-C stops every node and removes the stores.
#
#   scripts/nats-cluster.sh            # ports 4222, 4223, 4224 (routes 6222..6224)
#   NODES=1 scripts/nats-cluster.sh    # one standalone JetStream server on 4222
#   BASE_PORT=5222 scripts/nats-cluster.sh
#
# It prints the --engine value to pass to the hubs.
set -euo pipefail
NODES=${NODES:-3}
BASE_PORT=${BASE_PORT:-4222}
ROUTE_BASE=${ROUTE_BASE:-$((BASE_PORT + 2000))}
CLUSTER=${CLUSTER:-tributary}
DIR=$(mktemp -d "${TMPDIR:-/tmp}/tributary-nats-XXXXXX")
command -v nats-server >/dev/null || { echo "nats-server not found (apt-get install nats-server)" >&2; exit 1; }

pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$DIR"
}
trap cleanup EXIT INT TERM

urls=()
for ((i = 0; i < NODES; i++)); do
  port=$((BASE_PORT + i))
  conf="$DIR/n$i.conf"
  {
    echo "server_name: $CLUSTER-n$i"
    echo "listen: 127.0.0.1:$port"
    echo "jetstream { store_dir: \"$DIR/n$i\" }"
    if [ "$NODES" -gt 1 ]; then
      routes=()
      for ((j = 0; j < NODES; j++)); do [ "$j" = "$i" ] || routes+=("nats-route://127.0.0.1:$((ROUTE_BASE + j))"); done
      echo "cluster { name: $CLUSTER, listen: 127.0.0.1:$((ROUTE_BASE + i)), routes: [$(IFS=,; echo "${routes[*]}")] }"
    fi
  } > "$conf"
  nats-server -c "$conf" > "$DIR/n$i.log" 2>&1 &
  pids+=($!)
  urls+=("nats://127.0.0.1:$port")
done

engine=$(IFS=,; echo "${urls[*]}")
echo "JetStream on $NODES node(s); logs in $DIR"
echo "run hubs with: tributary serve --engine $engine"
wait -n "${pids[@]}"
echo "a nats-server exited; see $DIR/*.log" >&2
cat "$DIR"/*.log >&2
exit 1
