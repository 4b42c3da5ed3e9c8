# Sourced by bench/run.sh (not run on its own): one measured wrk run and the CPU it cost the serving process.
# Uses run.sh's settings and state (ports, PIDs, TMP, BIN, log/die/meta).
# shellcheck shell=bash

# --- CPU accounting: what each request costs the process serving it ------------------------
CLK_TCK=$(getconf CLK_TCK)
server_pids() { # server_pids SCENARIO: the processes doing the work (nginx: its workers)
  case "$1" in
    upstream) pgrep -P "$UPSTREAM_PID" ;;
    nginx) pgrep -P "$PEER_PID" ;;
    base-*) echo "$BASE_PID" ;;
    redis-*) echo "$RSG_PID" ;;
    sg-es256) echo "$ES_PID" ;;
    sg-eddsa) echo "$ED_PID" ;;
    *) echo "$SG_PID" ;;
  esac
}
cpu_ticks() { # cpu_ticks PID...: "user system" clock ticks, all threads, summed
  local u=0 s=0 p f
  for p in "$@"; do
    # Fields after "pid (comm) ": utime and stime are the 12th and 13th.
    read -r -a f < <(sed 's/^.*) //' "/proc/$p/stat")
    u=$((u + f[11]))
    s=$((s + f[12]))
  done
  echo "$u $s"
}

# --- one wrk run -------------------------------------------------------------------------
LAST_RPS=0
declare -A EST_RPS
# run_wrk PHASE ROUND SCENARIO DURATION CONNECTIONS [DELAY_MS]
run_wrk() {
  local phase=$1 round=$2 scen=$3 dur=$4 conns=$5 delay=${6:-0}
  local url args=("body=$GRANT" "threads=$THREADS" "delay_ms=$delay") minted=0
  case "$scen" in
    upstream) url="http://127.0.0.1:$UPSTREAM_PORT/oauth2/token" ;;
    nginx) url="https://localhost:$PEER_PORT/oauth2/token" args+=("auth=$BASIC_AUTH") ;;
    sg-basic) url="https://localhost:$SG_PORT/oauth2/token" args+=("auth=$BASIC_AUTH") ;;
    sg-hashed) url="https://localhost:$SG_PORT/oauth2/token" args+=("auth=$HASHED_AUTH") ;;
    sg-limited) url="https://localhost:$SG_PORT/oauth2/token" args+=("auth=$LIMITED_AUTH") ;;
    base-basic) url="https://localhost:$BASE_PORT/oauth2/token" args+=("auth=$BASIC_AUTH") ;;
    redis-basic) url="https://localhost:$RSG_PORT/oauth2/token" args+=("auth=$BASIC_AUTH") ;;
    sg-es256) url="https://localhost:$ES_PORT/oauth2/token" args+=("auth=$BASIC_AUTH") ;;
    sg-eddsa) url="https://localhost:$ED_PORT/oauth2/token" args+=("auth=$BASIC_AUTH") ;;
    sg-post | redis-post)
      url="https://localhost:$SG_PORT/oauth2/token"
      if [[ $scen == redis-* ]]; then url="https://localhost:$RSG_PORT/oauth2/token"; fi
      args=("body=$GRANT&client_id=$POST_ID&client_secret=$POST_SECRET" "threads=$THREADS" "delay_ms=$delay")
      ;;
    sg-jwt | redis-jwt)
      url="https://localhost:$SG_PORT/oauth2/token"
      if [[ $scen == redis-* ]]; then url="https://localhost:$RSG_PORT/oauth2/token"; fi
      # Enough unused assertions for this run: 1.5x the best rate seen so far for any
      # secretgate scenario (or the fixed rate), plus half a second of it and 2000 more
      # (in runs of a second or two, a rate that doubles, or one wrk thread outpacing the
      # other, would otherwise empty its share). Minted right before the run.
      # In the warm-up the only rates known are a second or two of each: the upstream's
      # (the ceiling) then. A pool that runs out is not only an invalid run: the replays
      # are failures, and past throttle.max_failures_per_address every scenario on that
      # instance gets 429 for a window.
      local est=0 k
      for k in "${!EST_RPS[@]}"; do
        if [[ $k == sg-* || $k == redis-* || $k == base-* || ($phase == warmup && $k == upstream) ]] &&
          ((${EST_RPS[$k]} > est)); then est=${EST_RPS[$k]}; fi
      done
      if ((est == 0)); then est=20000; fi
      if ((delay > 0)); then est=$((conns * 1000 / delay + 1)); fi
      minted=$((est * dur * 3 / 2 + est / 2 + 2000))
      local file="$TMP/assertions/$phase-$round-$scen.txt"
      mint "$minted" "$file"
      args+=("assertions=$file")
      ;;
    *) die "unknown scenario $scen" ;;
  esac
  local out="$TMP/wrk/$phase-$round-$scen.txt" cmd=(env BENCH_CONNECT=127.0.0.1 wrk -t "$THREADS" -c "$conns" -d "${dur}s" --timeout 5s --latency -s "$BENCH/token.lua" "$url" -- "${args[@]}")
  if [[ -n $WRK_CPUS ]]; then cmd=(taskset -c "$WRK_CPUS" "${cmd[@]}"); fi
  local pids cpu_before cpu_after redis_before=(0 0) redis_after=(0 0)
  mapfile -t pids < <(server_pids "$scen")
  read -r -a cpu_before < <(cpu_ticks "${pids[@]}")
  if [[ $scen == redis-* ]]; then read -r -a redis_before < <(cpu_ticks "$REDIS_PID"); fi
  "${cmd[@]}" >"$out" 2>&1 &
  WRK_PID=$!
  wait "$WRK_PID" || die "wrk failed: $(tail -5 "$out")"
  WRK_PID=
  read -r -a cpu_after < <(cpu_ticks "${pids[@]}")
  if [[ $scen == redis-* ]]; then read -r -a redis_after < <(cpu_ticks "$REDIS_PID"); fi
  local line
  line=$(grep '^WRKRESULT ' "$out" | sed 's/^WRKRESULT //') || die "no result from wrk: $(tail -5 "$out")"
  rm -f "$TMP/assertions/$phase-$round-$scen.txt"
  # redis-*: redis-server's CPU apart (redis_cpu_us), the gateway's in cpu_*_us.
  local cpu
  cpu=$(python3 - "${cpu_before[@]:0:2}" "${cpu_after[@]:0:2}" "${redis_before[@]:0:2}" "${redis_after[@]:0:2}" \
    "$(sed -E 's/.*\brequests=([0-9]+).*/\1/' <<<"$line")" "$CLK_TCK" "$scen" <<'EOF'
import sys
u0, s0, u1, s1, r0, q0, r1, q1, n, hz = map(float, sys.argv[1:11])
def per(ticks):
    return ticks / hz / max(n, 1) * 1e6
out = f"cpu_user_us={per(u1 - u0):.2f} cpu_sys_us={per(s1 - s0):.2f}"
if sys.argv[11].startswith("redis-"):
    out += f" redis_cpu_us={per(r1 - r0 + q1 - q0):.2f}"
print(out)
EOF
  )
  printf '%s\t%s\t%s\t%s minted=%s rss_kib=%s %s\n' "$phase" "$round" "$scen" "$line" "$minted" "$(rss_kib)" "$cpu" >>"$RESULTS"
  LAST_RPS=$(sed -E 's/.*\brps=([0-9]+).*/\1/' <<<"$line")
  if [[ $phase != latency ]]; then
    EST_RPS[$scen]=$LAST_RPS
  fi
  local bad
  bad=$(python3 -c 'import sys; d=dict(kv.split("=") for kv in sys.argv[1].split()); print(sum(int(d[k]) for k in ("non2xx","exhausted","connect","read","write","timeout")))' "$line")
  log "$(printf '%-8s %-3s %-11s %8s req/s  p50 %6s us  p99 %6s us  %s' "$phase" "$round" "$scen" "$LAST_RPS" \
    "$(sed -E 's/.*lat_p50_us=([0-9]+).*/\1/' <<<"$line")" "$(sed -E 's/.*lat_p99_us=([0-9]+).*/\1/' <<<"$line")" \
    "$( ((bad == 0)) && echo ok || echo "INVALID ($bad errors: $(grep -o 'non2xx=[0-9]* first_bad_status=[0-9]* exhausted=[0-9]*' <<<"$line"))")")"
}
