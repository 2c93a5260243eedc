# shellcheck shell=bash
# Shared helpers for the project's scripts: progress lines, failures that say
# which step failed and where its log is, and running a long step quietly.

set -euo pipefail

PROJECT_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export PROJECT_ROOT
LOG_DIR="${LOG_DIR:-${PROJECT_ROOT}/.logs}"
mkdir -p "${LOG_DIR}"

# The platforms the test images are built for (scripts/build-image PLATFORM),
# each a release codename; the first is the default, which the lab and every
# Molecule scenario run.
PLATFORMS=(bookworm trixie noble)

# platform_archive PLATFORM: the archive a platform's release comes from.
platform_archive() {
  case "$1" in
    bookworm | trixie) echo debian ;;
    noble) echo ubuntu ;;
    *) return 1 ;;
  esac
}

# platform_image PLATFORM [molecule]: a platform's systemd image, or the
# Molecule scenarios' image built on it (the same with the backends' packages
# installed: images/systemd-molecule), e.g.
# hello-service/ubuntu-systemd-molecule:noble.
platform_image() {
  printf 'hello-service/%s-systemd%s:%s\n' "$(platform_archive "$1")" "${2:+-$2}" "$1"
}

# The default platform's images, used by the local lab and by
# molecule/shared/create.yml; the environment may name others.
TEST_IMAGE="${TEST_IMAGE:-$(platform_image "${PLATFORMS[0]}")}"
export TEST_IMAGE
MOLECULE_IMAGE="${MOLECULE_IMAGE:-$(platform_image "${PLATFORMS[0]}" molecule)}"
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
