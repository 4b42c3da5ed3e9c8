# Sourced by bench/run.sh (not run on its own): instructions per request, counted under callgrind.
# Uses run.sh's settings and state (ports, PIDs, TMP, BIN, log/die/meta).
# shellcheck shell=bash

# --- instructions per request (callgrind) ---------------------------------------------------
# Wall-clock ratios of a few percent drown in this machine's noise; the instructions
# secretgate executes per request do not (±0.5% between runs). A second secretgate with
# one worker runs under callgrind; per scenario: warm up, zero the counters, CG_DURATION s
# of wrk -t1 -c4, dump, and divide the instructions by the requests wrk completed. Under
# valgrind SHA-256 runs its portable code instead of SHA-NI (~45k instructions of a
# request): the counts compare builds, they are not a native cost.
instructions() {
  local dir="$TMP/callgrind" cg_pid scen url args out line requests ir dumps
  mkdir -p "$dir"
  log "instruction counts: secretgate (workers: 1) under callgrind, ${CG_DURATION}s per scenario"
  (
    export SECRETGATE_LOG=$SG_LOG_LEVEL NO_COLOR=1
    exec valgrind --tool=callgrind --callgrind-out-file="$dir/callgrind.out.%p" \
      "$BIN" run --config "$TMP/secretgate-cg.yaml" 2>"$TMP/secretgate-cg.log"
  ) &
  cg_pid=$!
  PIDS+=("$cg_pid")
  for _ in $(seq 600); do
    if curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$CG_ADMIN_PORT/readyz"; then break; fi
    kill -0 "$cg_pid" 2>/dev/null || die "secretgate under callgrind exited: $(tail -5 "$TMP/secretgate-cg.log")"
    sleep 0.2
  done
  for scen in sg-basic sg-limited sg-post sg-jwt; do
    url="https://localhost:$CG_PORT/oauth2/token"
    case "$scen" in
      sg-basic) args=("body=$GRANT" "auth=$BASIC_AUTH" threads=1) ;;
      sg-limited) args=("body=$GRANT" "auth=$LIMITED_AUTH" threads=1) ;;
      sg-post) args=("body=$GRANT&client_id=$POST_ID&client_secret=$POST_SECRET" threads=1) ;;
      sg-jwt) args=("body=$GRANT" threads=1) ;;
    esac
    # jwt: fresh assertions for each of the two runs (a jti is single-use).
    local warm=() counted=()
    if [[ $scen == sg-jwt ]]; then
      mint 20000 "$TMP/assertions/cg-warm.txt"
      mint $((CG_DURATION * 5000 + 5000)) "$TMP/assertions/cg.txt"
      warm=("assertions=$TMP/assertions/cg-warm.txt") counted=("assertions=$TMP/assertions/cg.txt")
    fi
    out="$TMP/wrk/instructions-$scen.txt"
    BENCH_CONNECT=127.0.0.1 wrk -t1 -c4 -d2s --timeout 10s -s "$BENCH/token.lua" "$url" -- "${args[@]}" "${warm[@]}" >"$out.warmup" 2>&1 ||
      die "wrk failed: $(tail -5 "$out.warmup")"
    callgrind_control -z "$cg_pid" >/dev/null 2>&1
    BENCH_CONNECT=127.0.0.1 wrk -t1 -c4 -d"${CG_DURATION}s" --timeout 10s -s "$BENCH/token.lua" "$url" -- "${args[@]}" "${counted[@]}" >"$out" 2>&1 ||
      die "wrk failed: $(tail -5 "$out")"
    callgrind_control -d "$scen" "$cg_pid" >/dev/null 2>&1
    line=$(grep '^WRKRESULT ' "$out" | sed 's/^WRKRESULT //') || die "no result from wrk: $(tail -5 "$out")"
    requests=$(sed -E 's/.*\brequests=([0-9]+).*/\1/' <<<"$line")
    # The newest dump: its `summary:` (or `totals:`) line is the instruction count. The
    # TLS handshakes of wrk's four connections (inclusive cost of tokio-rustls'
    # MidHandshake, occasionally with an entropy reseed inside) are fixed costs, not
    # per-request ones: taken out. The portable SHA-256 (self cost) is given apart.
    dumps=$(ls -t "$dir"/callgrind.out.* | head -1)
    ir=$(awk '/^(summary|totals):/ {print $2; exit}' "$dumps")
    [[ -n $ir && $requests -gt 0 ]] || die "no instruction count for $scen ($dumps)"
    if grep -Eq 'non2xx=[1-9]|exhausted=[1-9]' <<<"$line"; then die "instructions $scen: errors: $line"; fi
    local hs sha
    hs=$(callgrind_annotate --inclusive=yes --threshold=100 "$dumps" 2>/dev/null |
      awk '/MidHandshake<IS> as core::future::future::Future>::poll/ {gsub(",", "", $1); print $1; exit}' || true)
    sha=$(callgrind_annotate --threshold=100 "$dumps" 2>/dev/null |
      awk '/sha2::sha256::soft::compress/ {gsub(",", "", $1); print $1; exit}' || true)
    ir=$((ir - ${hs:-0}))
    meta "instructions_$scen" "$((ir / requests)) $(((ir - ${sha:-0}) / requests)) $requests"
    log "$(printf 'instructions %-9s %8d per request, %8d without SHA-256 (%d requests)' "$scen" "$((ir / requests))" "$(((ir - ${sha:-0}) / requests))" "$requests")"
    rm -f "$TMP/assertions/cg.txt" "$TMP/assertions/cg-warm.txt"
  done
  kill -TERM "$cg_pid" 2>/dev/null || true
  wait "$cg_pid" 2>/dev/null || true
  cp "$dir"/callgrind.out.* "$OUT_DIR/" 2>/dev/null || true
}
