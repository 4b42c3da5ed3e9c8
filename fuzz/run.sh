#!/usr/bin/env bash
# Runs every fuzz target (or the ones named) for SECONDS each, one after the other, and
# prints a table of what each run did: executions, coverage, corpus size, crashes.
#
#   cargo install cargo-fuzz           # once; needs the nightly toolchain for ASan
#   fuzz/run.sh                        # every target, 60 s each
#   SECONDS_PER_TARGET=600 fuzz/run.sh path form
#   RUNS=10000000 fuzz/run.sh          # stop each target after RUNS executions instead
#
# Each target's corpus is fuzz/corpus/<target> (committed: it is what the next run starts
# from), seeded from fuzz/seeds/<target>. Runs use AddressSanitizer on nightly
# (SANITIZER=none for a stable toolchain). Crashes land in fuzz/artifacts/<target>/ and
# make this script exit 1. Logs: target/fuzz-logs/<target>.log; summary: stdout and
# target/fuzz-logs/summary.md. CORPUS_MIN=1 minimises each corpus afterwards (cargo fuzz
# cmin), which keeps the committed corpus small.
set -euo pipefail
cd "$(dirname "$0")"
ROOT=$(cd .. && pwd)
SECS=${SECONDS_PER_TARGET:-60}
RUNS=${RUNS:-}
SANITIZER=${SANITIZER:-address}
TOOLCHAIN=${TOOLCHAIN:-nightly}
LOGS="$ROOT/target/fuzz-logs"
mkdir -p "$LOGS"

all=$(sed -n 's/^name = "\(.*\)"$/\1/p' Cargo.toml | grep -v '^secretgate-fuzz$')
targets=${*:-$all}

limit=(-max_total_time="$SECS")
if [ -n "$RUNS" ]; then limit=(-runs="$RUNS"); fi

# Longest input per target: a little over what the parser can meaningfully see (a token
# request is a few hundred bytes), so executions go to inputs that matter.
max_len() {
  case "$1" in
    basic | path) echo 1024 ;;
    form | containment | internal_header | readings) echo 2048 ;;
    multipart | jws) echo 4096 ;;
    *) echo 8192 ;;
  esac
}

summary="$LOGS/summary.md"
{
  echo "| target | executions | exec/s | coverage (cov) | features (ft) | corpus | crashes |"
  echo "|---|---:|---:|---:|---:|---:|---:|"
} > "$summary"
failed=0
for t in $targets; do
  mkdir -p "corpus/$t" "seeds/$t"
  echo "== $t" >&2
  set +e
  cargo "+$TOOLCHAIN" fuzz run -s "$SANITIZER" "$t" "corpus/$t" "seeds/$t" -- \
    "${limit[@]}" -max_len="$(max_len "$t")" -print_final_stats=1 > "$LOGS/$t.log" 2>&1
  rc=$?
  set -e
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$LOGS/$t.log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$LOGS/$t.log" | tail -1)
  last=$(grep -E '^#[0-9]+' "$LOGS/$t.log" | tail -1)
  cov=$(echo "$last" | sed -n 's/.*cov: \([0-9]*\).*/\1/p')
  ft=$(echo "$last" | sed -n 's/.*ft: \([0-9]*\).*/\1/p')
  corpus=$(find "corpus/$t" -type f | wc -l)
  crashes=$(find "artifacts/$t" -type f 2>/dev/null | wc -l)
  echo "| $t | ${execs:-?} | ${rate:-?} | ${cov:-?} | ${ft:-?} | $corpus | $crashes |" >> "$summary"
  if [ "$rc" -ne 0 ] || [ "$crashes" -gt 0 ]; then
    echo "$t: exit $rc, $crashes crash file(s); see $LOGS/$t.log" >&2
    failed=1
  fi
  if [ "${CORPUS_MIN:-0}" = 1 ]; then
    cargo "+$TOOLCHAIN" fuzz cmin -s "$SANITIZER" "$t" "corpus/$t" > "$LOGS/$t.cmin.log" 2>&1 || true
  fi
done
cat "$summary"
exit "$failed"
