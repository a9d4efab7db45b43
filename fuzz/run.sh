#!/usr/bin/env bash
# Runs every fuzz target of a VIGIL_FUZZ build for a bounded time:
#   fuzz/run.sh BUILD_DIR SECONDS_PER_TARGET [TARGET...]
# Each run starts from the committed seeds (fuzz/corpus/<target>), the
# corpus earlier runs grew (BUILD_DIR/fuzz-corpus/<target>) and the fixed
# crash reproducers (fuzz/regressions/<target>, all run when it starts, so a fixed
# crash that comes back fails at once). Memory and input size are bounded.
# Prints one PASS or FAIL line per target; exits 1 when any failed, leaving
# the reproducer in BUILD_DIR/fuzz-crashes/<target>/.
set -uo pipefail

build=${1:?usage: fuzz/run.sh BUILD_DIR SECONDS [TARGET...]}
seconds=${2:?usage: fuzz/run.sh BUILD_DIR SECONDS [TARGET...]}
shift 2
src=$(cd "$(dirname "$0")" && pwd)
build=$(cd "$build" && pwd)
targets=("$@")
if ((${#targets[@]} == 0)); then
  targets=(sshcert_cert sshcert_keys config recording auditlog_search auditlog_time cluster_resources ca_tls_identity relay_wire proxy_header)
fi

# Longest input per target: enough for the formats' interesting shapes
# (a certificate with options, a node file, a few chunks), small enough to
# keep each run fast.
max_len_for() {
  case $1 in
    recording) echo 16384 ;;
    auditlog_time) echo 128 ;;
    *) echo 4096 ;;
  esac
}

failed=0
for t in "${targets[@]}"; do
  bin=$build/fuzz/${t}_fuzz
  corpus=$build/fuzz-corpus/$t
  crashes=$build/fuzz-crashes/$t
  log=$build/fuzz-logs/$t.log
  mkdir -p "$corpus" "$crashes" "$(dirname "$log")"
  if [[ ! -x $bin ]]; then
    echo "fuzz: $t: FAIL ($bin is missing; build the fuzz_targets target first)"
    failed=1
    continue
  fi
  # libFuzzer reads corpus directories recursively: the fixed reproducers
  # are copied to a directory of their own, leaving out open/ (crashes in
  # code another part owns, not fixed yet).
  fixed=$build/fuzz-regressions/$t
  rm -rf "$fixed"
  mkdir -p "$fixed"
  find "$src/regressions/$t" -maxdepth 1 -type f ! -name README.md -exec cp {} "$fixed/" \; 2>/dev/null
  dirs=("$corpus" "$src/corpus/$t" "$fixed")
  # -rss_limit_mb and -malloc_limit_mb: an input that makes the parser take
  # more than 2 GiB is a finding, as is one that takes more than 10 s.
  "$bin" -max_total_time="$seconds" -rss_limit_mb=2048 -malloc_limit_mb=2048 -timeout=10 \
    -max_len="$(max_len_for "$t")" -print_final_stats=1 \
    -artifact_prefix="$crashes/" "${dirs[@]}" >"$log" 2>&1
  rc=$?
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  if ((rc == 0)); then
    echo "fuzz: $t: PASS (${runs:-?} runs in ${seconds} s, no crash; corpus $(ls "$corpus" | wc -l) inputs)"
  else
    failed=1
    artifact=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -1)
    echo "fuzz: $t: FAIL (exit $rc after ${runs:-?} runs; reproducer: ${artifact:-none written}; log: $log)"
    grep -m1 -A12 -E '^==[0-9]+==ERROR|runtime error|FUZZ_CHECK|ERROR: libFuzzer' "$log" | sed 's/^/    /'
    echo "    replay: $bin ${artifact:-<reproducer>}"
  fi
done
exit $failed
