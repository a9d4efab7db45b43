#!/usr/bin/env bash
# Runs every test tier and refuses skips: on this machine kind every
# capability a test needs is present, so a skip means something is wrong.
set -uo pipefail
build=${1:-build}
log=$(mktemp)
trap 'rm -f "$log"' EXIT

if [[ $(id -u) -ne 0 ]]; then
  echo "run-tests: the root and end-to-end tiers need root (BPF, cgroups); run 'make test' as root" >&2
  exit 1
fi

cd "$build"
ctest --output-on-failure --timeout 600 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
if grep -q "(Skipped)" "$log"; then
  echo "run-tests: tests were skipped (listed above); on this machine kind nothing may skip" >&2
  exit 1
fi
exit "$status"
