# shellcheck shell=bash
# Sourced by the project's bash scripts (each from its own folder, with a "shellcheck
# source=scripts/lib.sh" directive above the line): strict mode, and a failure that
# always says where.
#
# Any command that fails ends the script with one line on stderr naming the script, the
# line, the command and its exit status: no script of this project exits silently. A step
# whose output matters on failure runs through `run_logged` (below), which prints the
# command's own output when, and only when, it fails.
set -Eeuo pipefail

_script_name=$(basename "${BASH_SOURCE[1]:-$0}")

_on_error() {
  local status=$1 line=$2 command=$3
  echo "$_script_name: failed (exit $status) at line $line: $command" >&2
}
trap '_on_error $? $LINENO "$BASH_COMMAND"' ERR

# run_logged STEP COMMAND...: run COMMAND quietly; on failure print STEP, the command and
# the last 60 lines of its output, then fail with its status.
run_logged() {
  local step=$1; shift
  local log status=0
  log=$(mktemp)
  "$@" >"$log" 2>&1 || status=$?
  if [ "$status" -ne 0 ]; then
    {
      echo "== $step failed (exit $status): $*"
      tail -n 60 "$log"
    } >&2
    rm -f "$log"
    return "$status"
  fi
  rm -f "$log"
}
