#!/usr/bin/env bash
# Installs the benchmark's peers from Debian's packages when they are missing:
# nats-server (NATS JetStream), redis-server (Redis Streams), mosquitto (MQTT).
# Their Node clients (nats, ioredis, mqtt) are dev dependencies already.
# The packages' own services are not used: bench/run.ts starts each server
# itself on loopback with a temp directory, and stops it afterwards.
set -euo pipefail

need=()
command -v nats-server >/dev/null 2>&1 || [ -x /usr/sbin/nats-server ] || need+=(nats-server)
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || need+=(mosquitto)

if [ ${#need[@]} -eq 0 ]; then
  echo "peers present: $(command -v nats-server || echo /usr/sbin/nats-server), $(command -v redis-server), $(command -v mosquitto || echo /usr/sbin/mosquitto)"
  exit 0
fi

echo "installing from Debian: ${need[*]}"
SUDO=""
[ "$(id -u)" = 0 ] || SUDO="sudo"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
# Debian may start the packaged services; the benchmark does not need them.
for svc in redis-server mosquitto; do
  $SUDO service "$svc" stop >/dev/null 2>&1 || true
done
echo "installed: ${need[*]}"
