#!/usr/bin/env bash
# Everything CI runs. Reuses a stack that is already up (make up / make itest-up);
# otherwise starts the itest stack and always stops it (and deletes its data) at the end.
set -euo pipefail
cd "$(dirname "$0")/../.."

stack="npx --no-install tsx deployments/local/stack.ts"
started=0
cleanup() {
  status=$?
  if [ "$started" = 1 ]; then
    echo "[check] stopping the itest stack"
    $stack down --profile itest --purge || status=1
  fi
  exit $status
}
trap cleanup EXIT INT TERM

echo "[check] typecheck"
npm run --silent typecheck
echo "[check] unit tests"
npm test

if $stack status --quiet; then
  echo "[check] a stack is already running: testing against it"
else
  started=1
  echo "[check] starting the itest stack"
  $stack up --profile itest
fi
npx --no-install tsx sinks/postgres/migrate-cli.ts up
echo "[check] integration tests"
npm run itest
# The short profile of the fault-injection suite (make chaos runs the full one); a fixed seed
# so that a failure reproduces with CHAOS_SEED=<seed> make chaos.
echo "[check] fault injection and hostile input (short profile)"
npx --no-install tsx test/chaos/run.ts --profile short --seed "${CHAOS_SEED:-20261127}"
