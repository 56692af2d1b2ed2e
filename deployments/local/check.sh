#!/usr/bin/env bash
# Everything CI runs. Reuses a stack that is already up (make up / make itest-up);
# otherwise starts the itest stack and always stops it (and deletes its data) at the end.
set -euo pipefail
cd "$(dirname "$0")/../.."
source deployments/local/use-stack.sh

echo "[check] typecheck"
npm run --silent typecheck
echo "[check] lint: eslint, prettier and the dependency rule"
npm run --silent lint
echo "[check] unit tests"
npm test

use_stack check

# `make up`'s services join the consumer groups of the pipeline the tests drive (etl-extract,
# etl-validate, etl-load, the monitoring's): they would take partitions and events from the
# tests. They are stopped for the tests and started again afterwards, whatever the outcome.
services="npx --no-install tsx deployments/local/services.ts"
services_stopped=0
check_cleanup() {
  local status=$?
  if [ "$services_stopped" = 1 ]; then
    echo "[check] starting make up's services again"
    $services start || status=1
  fi
  (exit $status)
  stack_cleanup
}
trap check_cleanup EXIT INT TERM
if $services running --quiet; then
  echo "[check] make up's services are running: stopping them for the tests"
  services_stopped=1
  $services stop
fi

echo "[check] integration tests"
npm run itest
# The short profile of the fault-injection suite (make chaos runs the full one); a fixed seed
# so that a failure reproduces with CHAOS_SEED=<seed> make chaos.
echo "[check] fault injection and hostile input (short profile)"
npx --no-install tsx test/chaos/run.ts --profile short --seed "${CHAOS_SEED:-20261127}"
