# shellcheck shell=bash
# Shared helpers for the project's scripts: progress lines, failures that say
# which step failed and where its log is, and running a long step quietly.

set -euo pipefail

PROJECT_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export PROJECT_ROOT
LOG_DIR="${LOG_DIR:-${PROJECT_ROOT}/.logs}"
mkdir -p "${LOG_DIR}"

# Name of the systemd-capable base image used by Molecule and the local lab.
TEST_IMAGE="${TEST_IMAGE:-hello-service/debian-systemd:bookworm}"
export TEST_IMAGE
# The Molecule scenarios' image: the same with the backends' packages installed
# (images/debian-systemd-molecule); molecule/shared/create.yml runs it.
MOLECULE_IMAGE="${MOLECULE_IMAGE:-hello-service/debian-systemd-molecule:bookworm}"
export MOLECULE_IMAGE

step() { printf '==> %s\n' "$*"; }
info() { printf '    %s\n' "$*"; }
die() { printf 'ERROR: %s\n' "$*" >&2; exit 1; }

# run_logged NAME COMMAND...: runs COMMAND with its output in .logs/NAME.log,
# printing elapsed seconds; on failure prints the log's tail and its path.
run_logged() {
  local name="$1"; shift
  local log="${LOG_DIR}/${name}.log" start rc=0
  start=$(date +%s)
  "$@" >"${log}" 2>&1 || rc=$?
  if [[ ${rc} -ne 0 ]]; then
    printf 'ERROR: step "%s" failed (exit %d); last lines of %s:\n' "${name}" "${rc}" "${log}" >&2
    tail -n 25 "${log}" >&2
    printf 'Full log: %s\n' "${log}" >&2
    return "${rc}"
  fi
  info "${name}: done in $(( $(date +%s) - start ))s (log: ${log})"
}
