#!/usr/bin/env bash
# The README's test command (`npm ci && npm test` runs this). On a fresh
# machine it installs what the tests need from Debian's packages, builds the
# browser bundle and the dashboard, and runs the whole suite with Vitest.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v chromium >/dev/null 2>&1 || need+=(chromium)
# The README's command-line example pipes into jq, and a test runs it.
command -v jq >/dev/null 2>&1 || need+=(jq)
# The connector tests start a real PostgreSQL (harness/postgres.ts); Debian puts its server under /usr/lib/postgresql/*/bin.
ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || need+=(postgresql)
command -v nats-server >/dev/null 2>&1 || need+=(nats-server)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing from Debian: ${need[*]}"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

[ -d node_modules ] || npm ci
# The type check, the linter (unused code, import cycles, long functions), the
# formatter and knip (unused files and exports) keep the code the way issue 11
# left it; CI fails on any of them. They run beside the build and the tests,
# not before them: the suite spends much of its time waiting on hubs, so the
# check's minute of CPU mostly hides in it. Its output comes after the tests'.
# `npm test -- <files>` runs only those test files and skips these checks.
check_pid=""
if [ $# -eq 0 ]; then
  check_log=$(mktemp)
  npm run --silent check >"$check_log" 2>&1 &
  check_pid=$!
fi
status=0
npm run --silent build && npx vitest run "$@" || status=$?
if [ -n "$check_pid" ]; then
  echo "type check, lint, format check, knip"
  wait "$check_pid" || status=$((status == 0 ? 1 : status))
  cat "$check_log"
  rm -f "$check_log"
fi
exit "$status"
