#!/usr/bin/env bash
# Everything CI runs. Reuses a stack that is already up (make up / make itest-up);
# otherwise starts the itest stack and always stops it (and deletes its data) at the end.
set -euo pipefail
cd "$(dirname "$0")/../.."
source deployments/local/use-stack.sh

echo "[check] typecheck"
npm run --silent typecheck
echo "[check] unit tests"
npm test

use_stack check
echo "[check] integration tests"
npm run itest
# The short profile of the fault-injection suite (make chaos runs the full one); a fixed seed
# so that a failure reproduces with CHAOS_SEED=<seed> make chaos.
echo "[check] fault injection and hostile input (short profile)"
npx --no-install tsx test/chaos/run.ts --profile short --seed "${CHAOS_SEED:-20261127}"
