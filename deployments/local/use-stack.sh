# Sourced by check.sh and chaos.sh: `use_stack <label>` reuses a stack that is already up
# (make up / make itest-up); otherwise it starts the itest stack and, whatever happens next,
# stops it and deletes its data when the calling script exits. Then it applies the migrations.
# Expects to run from the repository root.

stack="npx --no-install tsx deployments/local/stack.ts"
stack_label=stack
stack_started=0

stack_cleanup() {
  local status=$?
  if [ "$stack_started" = 1 ]; then
    echo "[$stack_label] stopping the itest stack"
    $stack down --profile itest --purge || status=1
  fi
  exit $status
}

use_stack() {
  stack_label=$1
  trap stack_cleanup EXIT INT TERM
  if $stack status --quiet; then
    echo "[$stack_label] a stack is already running: using it"
  else
    stack_started=1
    echo "[$stack_label] starting the itest stack"
    $stack up --profile itest
  fi
  npx --no-install tsx sinks/postgres/migrate-cli.ts up
}
