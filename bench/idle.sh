#!/usr/bin/env bash
# Memory benchmark: secretgate's RSS with many idle kept-alive TLS connections, and after
# they close (does the allocator give the freed pages back?).
#
#   apt-get install nginx            # plus openssl, python3, curl (on Debian by default)
#   bench/idle.sh                    # ~30 s with the defaults
#   MIMALLOC_PURGE_DELAY=0 SKIP_BUILD=1 bench/idle.sh   # MIMALLOC_* reach secretgate as is
#
# Made fresh under a temp dir (deleted on exit, KEEP_TMP=1 keeps it): a throwaway CA and
# server certificate, one client secret, the internal-header key and the configs. The
# upstream is nginx from bench/conf/upstream.nginx.conf.in (plain HTTP/1.1, keep-alive);
# secretgate has one client and forwards unprotected paths, so bench/idle.py's
# `GET /healthcheck-idle` on each connection goes through TLS, hyper and the stack to the
# upstream and back. idle.py samples secretgate's VmRSS from /proc: baseline, idle (all
# connections answered), after the hold, then 1/2/5/10 s after closing them all.
# Results: the JSON and a summary on stdout, one line appended to $OUT_DIR/idle.md.
#
# limits.keepalive_timeout is set to IDLE_TIMEOUT (and idle_timeout with it), so that the
# gateway keeps the idle connections through the hold.
#
# Settings (environment):
#   CONNECTIONS=1000 HOLD=5 (s)   idle connections and how long they stay idle
#   WORKERS=2                     secretgate's `workers`
#   CONCURRENCY=50                connections being set up at once (bounds the number of
#                                 upstream connections the gateway's pool opens)
#   IDLE_TIMEOUT=HOLD+60s         limits.keepalive_timeout and idle_timeout (see above)
#   PORT_BASE=18180               ports PORT_BASE (upstream), +1 (secretgate), +2 (admin)
#   BIN=target/release/secretgate the binary to measure (a BIN from elsewhere: no build;
#                                 the commit recorded is that of the repo holding BIN)
#   SKIP_BUILD=1                  do not run `cargo build --release`
#   SG_LOG=warn                   SECRETGATE_LOG
#   OUT_DIR=target/bench          where idle.md is appended to
#   KEEP_TMP=1                    keep the temp dir (configs, logs)
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BENCH="$ROOT/bench"
CONNECTIONS=${CONNECTIONS:-1000}
HOLD=${HOLD:-5}
WORKERS=${WORKERS:-2}
CONCURRENCY=${CONCURRENCY:-50}
IDLE_TIMEOUT=${IDLE_TIMEOUT:-$((${HOLD%.*} + 60))s}
PORT_BASE=${PORT_BASE:-18180}
SG_LOG=${SG_LOG:-warn}
OUT_DIR=${OUT_DIR:-$ROOT/target/bench}
UPSTREAM_PORT=$PORT_BASE
SG_PORT=$((PORT_BASE + 1))
SG_ADMIN_PORT=$((PORT_BASE + 2))

log() { printf '[idle %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() {
  log "error: $*"
  exit 1
}

command -v nginx >/dev/null 2>&1 || die "nginx not found: the upstream must be a real keep-alive HTTP/1.1 server (apt-get install nginx)"
for tool in openssl python3 curl; do
  command -v "$tool" >/dev/null 2>&1 || die "$tool not found (apt-get install $tool)"
done
NGINX=$(command -v nginx)
for p in $UPSTREAM_PORT $SG_PORT $SG_ADMIN_PORT; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then die "port $p is in use (set PORT_BASE)"; fi
done

# Descriptors: this shell's children (secretgate, nginx, idle.py) inherit the limit.
# secretgate holds one fd per client connection plus the upstream pool; idle.py as many.
NEED_FDS=$((CONNECTIONS + 256))
if [[ $(ulimit -n) != unlimited ]] && (($(ulimit -n) < NEED_FDS)); then
  ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
  if [[ $(ulimit -n) != unlimited ]] && (($(ulimit -n) < NEED_FDS)); then
    ulimit -n "$NEED_FDS" 2>/dev/null || die "ulimit -n is $(ulimit -n), hard limit $(ulimit -Hn): $NEED_FDS needed"
  fi
fi
log "ulimit -n $(ulimit -n)"

# --- build -----------------------------------------------------------------------------
if [[ -n ${BIN:-} ]]; then
  BIN=$(realpath "$BIN")
  log "BIN=$BIN given: not building"
else
  BIN="$ROOT/target/release/secretgate"
  if [[ ${SKIP_BUILD:-0} != 1 ]]; then
    log "cargo build --release"
    (cd "$ROOT" && cargo build --release) || die "build failed"
  fi
fi
[[ -x $BIN ]] || die "$BIN missing"
BIN_REPO=$(dirname "$BIN")
COMMIT="$(git -C "$BIN_REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)"
if [[ $COMMIT != unknown ]] && ! git -C "$BIN_REPO" diff --quiet HEAD -- src 2>/dev/null; then COMMIT="$COMMIT+dirty src"; fi

# --- cleanup ---------------------------------------------------------------------------
PIDS=()
TMP=
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do
    for _ in $(seq 50); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  if [[ -n $TMP && -d $TMP ]]; then
    if [[ ${KEEP_TMP:-0} == 1 ]]; then log "kept $TMP"; else rm -rf "$TMP"; fi
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

TMP=$(mktemp -d /tmp/secretgate-idle.XXXXXX)
chmod 711 "$TMP" # nginx workers started by root run as nobody
mkdir -p "$TMP/tls" "$TMP/secrets" "$OUT_DIR"
chmod 700 "$TMP/tls" "$TMP/secrets"

# --- certificates (throwaway CA + localhost/127.0.0.1 server cert, ECDSA P-256) --------
log "generating CA and server certificate in $TMP/tls"
(
  cd "$TMP/tls"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
    -subj "/CN=secretgate idle bench CA" -keyout ca.key -out ca.crt \
    -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign 2>/dev/null
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -subj "/CN=localhost" -keyout server.key -out server.csr 2>/dev/null
  printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' >ext.cnf
  openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 \
    -extfile ext.cnf -out server.crt 2>/dev/null
) || die "certificate generation failed"
openssl rand -hex 16 >"$TMP/secrets/basic"
openssl rand -hex 32 >"$TMP/secrets/internal-k1"
chmod 600 "$TMP"/secrets/*

# --- configs -------------------------------------------------------------------------------
sed -e "s|@TMP@|$TMP|g" -e "s|@UPSTREAM_WORKERS@|1|g" -e "s|@UPSTREAM_PORT@|$UPSTREAM_PORT|g" \
  "$BENCH/conf/upstream.nginx.conf.in" >"$TMP/upstream.conf"
cat >"$TMP/secretgate.yaml" <<EOF
# secretgate for bench/idle.sh: one client; unprotected paths are forwarded.
listen: "127.0.0.1:$SG_PORT"
tls:
  cert_file: $TMP/tls/server.crt
  key_file: $TMP/tls/server.key
upstream:
  url: "http://127.0.0.1:$UPSTREAM_PORT"
admin:
  listen: "127.0.0.1:$SG_ADMIN_PORT"
public_url: "https://auth.example.com"
issuer: "https://auth.example.com/acme/default"
endpoints: { token: ["/oauth2/token"] }
unprotected: forward
workers: $WORKERS
limits:
  keepalive_timeout: $IDLE_TIMEOUT
  idle_timeout: $IDLE_TIMEOUT
internal_header:
  keys:
    - id: k1
      file: $TMP/secrets/internal-k1
clients:
  - client_id: bench-basic
    auth_method: client_secret_basic
    secrets: [{ file: $TMP/secrets/basic }]
EOF
"$NGINX" -t -q -p "$TMP" -c "$TMP/upstream.conf" -e "$TMP/upstream-error.log" || die "upstream nginx config"
"$BIN" check --config "$TMP/secretgate.yaml" >/dev/null || die "secretgate config"

# --- start ---------------------------------------------------------------------------------
"$NGINX" -p "$TMP" -c "$TMP/upstream.conf" -e "$TMP/upstream-error.log" -g 'daemon off;' &
PIDS+=("$!")
SECRETGATE_LOG=$SG_LOG NO_COLOR=1 "$BIN" run --config "$TMP/secretgate.yaml" 2>"$TMP/secretgate.log" &
SG_PID=$!
PIDS+=("$SG_PID")

wait_http() { # wait_http URL: until the URL answers at all
  for _ in $(seq 100); do
    if curl -s -o /dev/null -k --max-time 1 "$1"; then return 0; fi
    sleep 0.1
  done
  return 1
}
wait_http "http://127.0.0.1:$UPSTREAM_PORT/" || die "upstream did not start (see $TMP/upstream-error.log)"
wait_http "http://127.0.0.1:$SG_ADMIN_PORT/readyz" || die "secretgate did not start: $(tail -5 "$TMP/secretgate.log")"
CODE=$(curl -sS -o /dev/null -w '%{http_code}' --cacert "$TMP/tls/ca.crt" \
  --resolve "localhost:$SG_PORT:127.0.0.1" "https://localhost:$SG_PORT/healthcheck-idle") || true
[[ $CODE == 200 ]] || die "smoke test: GET /healthcheck-idle through secretgate gave HTTP $CODE, expected 200"
MIMALLOC_ENV=$(env | grep '^MIMALLOC_' | sort | tr '\n' ' ' | sed 's/ $//' || true)
log "secretgate pid $SG_PID ($(ls "/proc/$SG_PID/task" | wc -l) threads, workers $WORKERS, commit $COMMIT${MIMALLOC_ENV:+, $MIMALLOC_ENV})"

# --- measure ---------------------------------------------------------------------------
JSON="$TMP/idle.json"
RC=0
python3 "$BENCH/idle.py" --cafile "$TMP/tls/ca.crt" --pid "$SG_PID" --connections "$CONNECTIONS" \
  --hold "$HOLD" --concurrency "$CONCURRENCY" 127.0.0.1 "$SG_PORT" >"$JSON" || RC=$?
[[ -s $JSON ]] || die "idle.py printed no result (exit $RC)"
kill -0 "$SG_PID" 2>/dev/null || die "secretgate exited during the run: $(tail -5 "$TMP/secretgate.log")"
cat "$JSON"

SUMMARY=$(python3 - "$JSON" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
r = {k: v / 1024 for k, v in d["rss_kib"].items()}
closed = " ".join(f"{k[len('closed_'):]} {v:.1f}" for k, v in r.items() if k.startswith("closed_"))
bad = d["failed"] + d["dropped_during_hold"]
print(f"{d['established']}/{d['connections']} idle TLS connections: RSS baseline {r['baseline']:.1f} MiB, "
      f"idle {r['idle']:.1f} MiB ({d['per_connection_kib']:.1f} KiB/connection), after hold "
      f"{r['idle_after_hold']:.1f} MiB; after close (s MiB): {closed}"
      + (f"; INVALID: {d['failed']} failed, {d['dropped_during_hold']} dropped {d['errors']}" if bad else ""))
EOF
)
echo "$SUMMARY"
{
  [[ -s $OUT_DIR/idle.md ]] || printf '# bench/idle.sh results\n\n'
  printf -- '- %s %s CONNECTIONS=%s HOLD=%s WORKERS=%s CONCURRENCY=%s%s: %s\n' \
    "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$COMMIT" "$CONNECTIONS" "$HOLD" "$WORKERS" "$CONCURRENCY" \
    "${MIMALLOC_ENV:+ $MIMALLOC_ENV}" "$SUMMARY"
  printf '  `%s`\n' "$(cat "$JSON")"
} >>"$OUT_DIR/idle.md"
log "appended to $OUT_DIR/idle.md"
exit "$RC"
