#!/usr/bin/env bash
# `make chaos`: the full fault-injection and hostile-input suite (test/chaos/). Reuses a running
# stack; otherwise starts the itest stack and stops it (deleting its data) at the end.
# Writes docs/reliability.md. CHAOS_SEED and CHAOS_ONLY pass through.
set -euo pipefail
cd "$(dirname "$0")/../.."

stack="npx --no-install tsx deployments/local/stack.ts"
started=0
cleanup() {
  status=$?
  if [ "$started" = 1 ]; then
    echo "[chaos] stopping the itest stack"
    $stack down --profile itest --purge || status=1
  fi
  exit $status
}
trap cleanup EXIT INT TERM

if ! $stack status --quiet; then
  started=1
  $stack up --profile itest
fi
npx --no-install tsx sinks/postgres/migrate-cli.ts up
args=(--profile "${CHAOS_PROFILE:-full}" --out "${CHAOS_OUT:-docs/reliability.md}")
if [ -n "${CHAOS_SEED:-}" ]; then args+=(--seed "$CHAOS_SEED"); fi
if [ -n "${CHAOS_ONLY:-}" ]; then args+=(--only "$CHAOS_ONLY"); fi
npx --no-install tsx test/chaos/run.ts "${args[@]}"
