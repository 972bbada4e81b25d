#!/usr/bin/env bash
# `make check` for the systemd units in deploy/: `systemd-analyze verify` (syntax, directives,
# executables) and `systemd-analyze security --offline=yes --threshold=N` (exposure x10: 45 is
# 4.5). A drop-in is checked merged into its unit, as systemd would apply it.
#
# verify needs ExecStart's program to exist: the unit's venv path (/opt/ioin-fleet/venv) is
# pointed at this checkout's .venv, which has the same bin/ioind layout the role installs.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v systemd-analyze >/dev/null 2>&1; then
  echo "check_units: systemd-analyze not found (Debian package systemd; tools/bootstrap.sh installs it)" >&2
  exit 1
fi
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
venv=$(cd .venv && pwd)

# unit name <- files merged in order, threshold (exposure x10)
check() {
  local name=$1 threshold=$2
  shift 2
  cat "$@" | sed "s|/opt/ioin-fleet/venv|$venv|g" >"$scratch/$name"
  (cd "$scratch" && systemd-analyze verify "./$name")
  local score
  score=$(cd "$scratch" && systemd-analyze security --offline=yes "./$name" | tail -1)
  if ! (cd "$scratch" && systemd-analyze security --offline=yes --threshold="$threshold" "./$name" >/dev/null); then
    echo "check_units: $name: ${score#→ } is above $((threshold / 10)).$((threshold % 10))" >&2
    exit 1
  fi
  echo "check_units: $name verified; ${score#→ Overall exposure level for }"
}

check ioind.service 45 deploy/ioind.service
check ioind-kvm-trace.service 30 deploy/ioind.service deploy/ioind-kvm-trace.conf
check ioinagg.service 45 deploy/ioinagg.service
