#!/usr/bin/env bash
# `make chaos`: the full fault-injection and hostile-input suite (test/chaos/). Reuses a running
# stack; otherwise starts the itest stack and stops it (deleting its data) at the end.
# Writes docs/reliability.md. CHAOS_SEED and CHAOS_ONLY pass through.
set -euo pipefail
cd "$(dirname "$0")/../.."
source deployments/local/use-stack.sh

use_stack chaos
args=(--profile "${CHAOS_PROFILE:-full}" --out "${CHAOS_OUT:-docs/reliability.md}")
if [ -n "${CHAOS_SEED:-}" ]; then args+=(--seed "$CHAOS_SEED"); fi
if [ -n "${CHAOS_ONLY:-}" ]; then args+=(--only "$CHAOS_ONLY"); fi
npx --no-install tsx test/chaos/run.ts "${args[@]}"
