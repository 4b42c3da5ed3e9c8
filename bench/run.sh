#!/usr/bin/env bash
# Load benchmark: secretgate against nginx doing the same job (TLS + HTTP Basic +
# proxy_pass) in front of the same upstream, same load generator, same run.
#
#   apt-get install nginx wrk        # plus openssl, python3, curl (on Debian by default)
#   bench/run.sh                     # full run, ~10 minutes with the defaults
#   bench/run.sh profile             # perf profile of secretgate's Basic path under load
#   bench/run.sh serve               # start everything, print the wrk commands, wait
#   bench/run.sh instructions        # only the instruction counts (needs valgrind)
#
# Everything is made fresh under a temp dir (deleted on exit, KEEP_TMP=1 keeps it): a
# throwaway CA and server certificate, client secrets, the argon2id hash of one of them
# (made by the built binary's `hash-secret`), the internal-header key, the Redis
# password, the htpasswd file and the configs (templates in bench/conf/). Nothing secret
# is written into the repository. Results: stdout and target/bench/results.md (+ raw wrk
# output).
#
# Processes, all on 127.0.0.1:
#   upstream   nginx, plain HTTP, `return 200 '{"access_token":...}'`, keep-alive
#   peer       nginx: TLS, auth_basic (htpasswd), Authorization removed, proxy_pass to
#              the upstream through an `upstream {}` pool with keepalive
#   secretgate one basic, one post, one jwt and one hashed-basic client, in front of the
#              same upstream; `state.backend: memory` (the default)
#   redis      (REDIS=on) redis-server: no persistence, a password (requirepass, from a
#              config file in the temp dir), its own temp dir
#   secretgate-es256, secretgate-eddsa  (HEADERS=on) the same binary and clients with
#              the internal header signed with an ES256 / EdDSA key (`new-key`, made at run
#              time) instead of HS256, each on ports of its own
#   secretgate-redis  (REDIS=on) the same binary and clients with `state.backend: redis`
#              (bench/conf/state-redis.yaml.in) on ports of its own: replay store and
#              throttle counters in that Redis
#
# Scenarios (wrk over TLS with keep-alive, bench/token.lua):
#   upstream  the upstream directly, plain HTTP (ceiling: no TLS, no proxy)
#   nginx     nginx Basic
#   sg-basic  secretgate client_secret_basic
#   sg-hashed secretgate client_secret_basic, the client's secret registered only as an
#             argon2id hash (hash-secret's parameters): warm verify cache, i.e. one
#             verification at the smoke test, then cache hits (HASH_CACHE_TTL below)
#   sg-limited secretgate client_secret_basic, a client with a `rate_limit` no run reaches
#             (4e9 requests/s): what taking a token from its bucket costs, next to sg-basic
#   sg-post   secretgate client_secret_post
#   sg-jwt    secretgate client_secret_jwt: a fresh assertion per request (jti is
#             single-use), minted before each round and handed out by the Lua script
#   sg-es256, sg-eddsa  (HEADERS=on) client_secret_basic against secretgate-es256 /
#             secretgate-eddsa: what an asymmetric internal header costs per request,
#             next to sg-basic (HS256) in every round
#   base-basic  with BASELINE_BIN: another secretgate binary (an earlier build), same
#             config on ports of its own, Basic: changes measured against it in one run
#   redis-basic, redis-post, redis-jwt  (REDIS=on) the same three against
#             secretgate-redis; redis-jwt's jti single-use is one `SET NX EXAT` in Redis
#             per request. Basic and post touch Redis only for a source with recent
#             failures, so the rounds start only once the smoke tests' deliberate replay
#             (a failure) and the subscription's start-up distrust are a throttle window
#             (60 s) old: the run waits for that if the warm-up was shorter.
# Runs alternate A/B/A/B over ROUNDS rounds: each group of scenarios compared with each
# other (nginx, base-basic, sg-basic, sg-hashed, sg-limited, redis-basic | sg-post, redis-post |
# sg-jwt, redis-jwt) runs in one order in odd rounds and the reverse in even ones; the
# report gives medians and the ratios within each round. Any non-2xx response, socket
# error or exhausted assertion pool makes that run invalid. Then one run per scenario at
# a fixed rate below saturation for p50/p99 latency. CPU per request is counted for the
# process serving each scenario; for redis-* redis-server's CPU is counted apart.
#
# Settings (environment):
#   ROUNDS=5 DURATION=8 (s per run) CONNECTIONS=64 THREADS=2 (wrk) WARMUP=2 (s)
#   WORKERS=$(nproc)   nginx worker_processes and secretgate's `workers`
#   UPSTREAM_WORKERS=1 nginx workers of the upstream
#   SERVER_CPUS=       taskset CPU list for the proxies under test (empty: all)
#   UPSTREAM_CPUS=     taskset CPU list for the upstream and redis-server (default: SERVER_CPUS)
#   WRK_CPUS=          taskset CPU list for wrk (empty: all)
#   PINNED=on          the one-core preset, as a sidecar with a 1-CPU limit runs: each proxy
#                      on CPU 0 with one worker (nginx worker_processes 1, secretgate
#                      workers: 1), the upstream and wrk on CPU 1 (sets WORKERS=1,
#                      SERVER_CPUS=0, UPSTREAM_CPUS=1, WRK_CPUS=1, THREADS=1; needs 2 CPUs)
#   RATE=auto          fixed-rate phase, requests/s (auto: half the slowest proxy median)
#   LAT_DURATION=8     seconds per fixed-rate run
#   LOGS=on            per-request access logs on both proxies (nginx access_log, secretgate
#                      at info); off: nginx access_log off, SECRETGATE_LOG=warn
#   NGINX_HASH=ssha    htpasswd scheme: ssha (one salted SHA-1, the cheapest real hash and
#                      the closest to secretgate's one HMAC), apr1, sha512 (crypt $6$), plain
#   SOAK=0             seconds of extra secretgate Basic load with RSS sampled every 5 s
#   PROFILE_SECONDS=15 (profile mode) length of the perf recording
#   BASELINE_BIN=     path of a secretgate binary to measure as `base-basic` next to this
#                      build (e.g. one built from an earlier commit; a build that cannot
#                      read hashed secrets gets the config without the hashed client)
#   REDIS=auto         the Redis scenarios: auto (when redis-server and redis-cli are
#                      installed: apt-get install redis-server), on, off
#   HASH_CACHE_TTL=1h  hashing.verify_cache_ttl: longer than a run, so that every measured
#                      sg-hashed request is a cache hit (the goal is the warm path). With
#                      the product default, 5m, the entry expires mid-run and every request
#                      in flight for the client misses at once (no single flight): up to
#                      CONNECTIONS argon2id verifications, 503s past hashing.max_queued
#   INSTRUCTIONS=auto  instruction counts per request with callgrind: auto (when valgrind
#                      is installed), on, off. CG_DURATION=6 s of counted load per scenario.
#   HEADERS=on         the sg-es256 and sg-eddsa scenarios (on, off)
#   PORT_BASE=18080    ports PORT_BASE..PORT_BASE+14 (+4/+5 callgrind, +6/+7 baseline,
#                      +8 redis, +9/+10 secretgate-redis, +11/+12 secretgate-es256,
#                      +13/+14 secretgate-eddsa)
#   SKIP_BUILD=1       use the existing target/release/secretgate
#   KEEP_TMP=1         keep the temp dir (configs, logs, keys) for inspection
set -euo pipefail

MODE=${1:-all}
case "$MODE" in all | profile | serve | instructions) ;; *)
  echo "usage: $0 [all|profile|serve|instructions]" >&2
  exit 2
  ;;
esac

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BENCH="$ROOT/bench"
NPROC=$(nproc)
ROUNDS=${ROUNDS:-5}
DURATION=${DURATION:-8}
CONNECTIONS=${CONNECTIONS:-64}
THREADS=${THREADS:-2}
WARMUP=${WARMUP:-2}
WORKERS=${WORKERS:-$NPROC}
UPSTREAM_WORKERS=${UPSTREAM_WORKERS:-1}
PINNED=${PINNED:-off}
if [[ $PINNED == on ]]; then
  WORKERS=1 SERVER_CPUS=0 UPSTREAM_CPUS=1 WRK_CPUS=1 THREADS=1
  ((NPROC >= 2)) || { echo "PINNED=on needs 2 CPUs" >&2; exit 2; }
fi
SERVER_CPUS=${SERVER_CPUS:-}
UPSTREAM_CPUS=${UPSTREAM_CPUS:-$SERVER_CPUS}
WRK_CPUS=${WRK_CPUS:-}
RATE=${RATE:-auto}
LAT_DURATION=${LAT_DURATION:-8}
LOGS=${LOGS:-on}
NGINX_HASH=${NGINX_HASH:-ssha}
SOAK=${SOAK:-0}
PROFILE_SECONDS=${PROFILE_SECONDS:-15}
PORT_BASE=${PORT_BASE:-18080}
OUT_DIR=${OUT_DIR:-$ROOT/target/bench}
INSTRUCTIONS=${INSTRUCTIONS:-auto}
CG_DURATION=${CG_DURATION:-6}
REDIS=${REDIS:-auto}
HASH_CACHE_TTL=${HASH_CACHE_TTL:-1h}
HEADERS=${HEADERS:-on}

UPSTREAM_PORT=$PORT_BASE
PEER_PORT=$((PORT_BASE + 1))
SG_PORT=$((PORT_BASE + 2))
SG_ADMIN_PORT=$((PORT_BASE + 3))
CG_PORT=$((PORT_BASE + 4))
CG_ADMIN_PORT=$((PORT_BASE + 5))
BASE_PORT=$((PORT_BASE + 6))
BASE_ADMIN_PORT=$((PORT_BASE + 7))
BASELINE_BIN=${BASELINE_BIN:-}
REDIS_PORT=$((PORT_BASE + 8))
RSG_PORT=$((PORT_BASE + 9))
RSG_ADMIN_PORT=$((PORT_BASE + 10))
ES_PORT=$((PORT_BASE + 11))
ES_ADMIN_PORT=$((PORT_BASE + 12))
ED_PORT=$((PORT_BASE + 13))
ED_ADMIN_PORT=$((PORT_BASE + 14))
BASIC_ID=bench-basic
POST_ID=bench-post
JWT_ID=bench-jwt
HASHED_ID=bench-hashed
LIMITED_ID=bench-limited
# throttle.window (the default, not set in the config): how long a failure keeps its source
# suspect, and how long after its pub/sub subscription starts secretgate-redis treats every
# source as suspect (docs/design.md §2.10).
THROTTLE_WINDOW=60
AUD=https://auth.example.com/oauth2/token
# What a typical client_credentials request carries besides the credential (as in
# benches/auth_path.rs).
GRANT='grant_type=client_credentials&scope=invoices.read%20invoices.write'
REPLAY_CAPACITY=${REPLAY_CAPACITY:-3000000}
ASSERTION_LIFETIME=60

log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() {
  log "error: $*"
  exit 1
}

for tool in nginx wrk openssl python3 curl cargo; do
  command -v "$tool" >/dev/null 2>&1 || die "$tool not found (apt-get install nginx wrk openssl python3 curl)"
done
if [[ $MODE == profile ]]; then
  command -v perf >/dev/null 2>&1 || die "perf not found (apt-get install linux-perf)"
fi
if [[ $MODE == instructions ]]; then INSTRUCTIONS=on; fi
case "$INSTRUCTIONS" in
  auto) if command -v valgrind >/dev/null 2>&1 && command -v callgrind_control >/dev/null 2>&1; then INSTRUCTIONS=on; else INSTRUCTIONS=off; fi ;;
  on) command -v callgrind_control >/dev/null 2>&1 || die "valgrind not found (apt-get install valgrind)" ;;
  off) ;;
  *) die "INSTRUCTIONS must be auto, on or off" ;;
esac
case "$REDIS" in
  auto) if command -v redis-server >/dev/null 2>&1 && command -v redis-cli >/dev/null 2>&1; then REDIS=on; else REDIS=off; fi ;;
  on) command -v redis-server >/dev/null 2>&1 && command -v redis-cli >/dev/null 2>&1 || die "redis-server or redis-cli not found (apt-get install redis-server)" ;;
  off) ;;
  *) die "REDIS must be auto, on or off" ;;
esac
case "$HEADERS" in on | off) ;; *) die "HEADERS must be on or off" ;; esac
NGINX=$(command -v nginx)
for p in $UPSTREAM_PORT $PEER_PORT $SG_PORT $SG_ADMIN_PORT $CG_PORT $CG_ADMIN_PORT $BASE_PORT $BASE_ADMIN_PORT $REDIS_PORT $RSG_PORT $RSG_ADMIN_PORT $ES_PORT $ES_ADMIN_PORT $ED_PORT $ED_ADMIN_PORT; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
    die "port $p is in use (set PORT_BASE)"
  fi
done
((CONNECTIONS >= THREADS)) || die "CONNECTIONS must be >= THREADS"

# --- cleanup -----------------------------------------------------------------------------
PIDS=()
WRK_PID=
TMP=
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  if [[ -n $WRK_PID ]]; then kill "$WRK_PID" 2>/dev/null || true; fi
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
    if [[ ${KEEP_TMP:-0} == 1 ]]; then
      log "kept $TMP"
    else
      rm -rf "$TMP"
    fi
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- machine state -------------------------------------------------------------------------
LOAD1=$(cut -d' ' -f1 /proc/loadavg)
log "uptime: $(uptime)"
if python3 -c "import sys; sys.exit(0 if float('$LOAD1') > 0.5 * $NPROC else 1)"; then
  log "WARNING: load average $LOAD1 on $NPROC CPUs: something else is running; numbers will be noisy"
fi

# --- build ---------------------------------------------------------------------------------
if [[ $MODE == profile ]]; then
  # Line tables for perf attribution and frame pointers for call graphs, in a separate
  # target dir so that the normal release binary is untouched (Cargo.toml unchanged).
  export CARGO_TARGET_DIR="$ROOT/target/bench-profile"
  export CARGO_PROFILE_RELEASE_DEBUG=line-tables-only
  export RUSTFLAGS="${RUSTFLAGS:-} -C force-frame-pointers=yes"
  BIN="$CARGO_TARGET_DIR/release/secretgate"
else
  BIN="$ROOT/target/release/secretgate"
fi
if [[ ${SKIP_BUILD:-0} != 1 ]]; then
  log "cargo build --release"
  (cd "$ROOT" && cargo build --release) || die "build failed"
fi
[[ -x $BIN ]] || die "$BIN missing"

TMP=$(mktemp -d /tmp/secretgate-bench.XXXXXX)
# nginx workers run as `nobody` when started by root: they may traverse the temp dir and
# read htpasswd (a salted hash), nothing else; secrets/ and tls/ keys stay owner-only.
chmod 711 "$TMP"
mkdir -p "$TMP/tls" "$TMP/secrets" "$TMP/wrk" "$TMP/assertions" "$TMP/redis" "$OUT_DIR"
chmod 700 "$TMP/tls" "$TMP/secrets" "$TMP/assertions" "$TMP/redis"
RESULTS="$TMP/results.tsv"
printf 'phase\tround\tscenario\t%s\n' "fields" >"$RESULTS"
META="$TMP/meta.txt"
: >"$META"
meta() { printf '%s=%s\n' "$1" "$2" >>"$META"; }

# --- certificates (throwaway CA + localhost/127.0.0.1 server cert, ECDSA P-256) ------------
log "generating CA and server certificate in $TMP/tls"
(
  cd "$TMP/tls"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
    -subj "/CN=secretgate bench CA" -keyout ca.key -out ca.crt \
    -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign 2>/dev/null
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -subj "/CN=localhost" -keyout server.key -out server.csr 2>/dev/null
  printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' >ext.cnf
  openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 \
    -extfile ext.cnf -out server.crt 2>/dev/null
) || die "certificate generation failed"

# --- secrets (hex: no characters that Basic's form-encoding would change) -----------------
BASIC_SECRET=$(openssl rand -hex 16)
POST_SECRET=$(openssl rand -hex 16)
JWT_SECRET=$(openssl rand -hex 24) # >= 32 bytes for client_secret_jwt
printf '%s\n' "$BASIC_SECRET" >"$TMP/secrets/basic"
printf '%s\n' "$POST_SECRET" >"$TMP/secrets/post"
printf '%s\n' "$JWT_SECRET" >"$TMP/secrets/jwt"
openssl rand -hex 32 >"$TMP/secrets/internal-k1"
# The hashed client's secret exists only here and in wrk's header: the gateway gets its
# argon2id hash, made by this build with the parameters operators get from hash-secret.
HASHED_SECRET=$(openssl rand -hex 16)
printf '%s\n' "$HASHED_SECRET" | "$BIN" hash-secret >"$TMP/secrets/hashed.hash" 2>"$TMP/hash-secret.log" ||
  die "hash-secret failed: $(cat "$TMP/hash-secret.log")"
grep -q '^\$argon2id\$' "$TMP/secrets/hashed.hash" || die "hash-secret made no argon2id hash: $(cat "$TMP/secrets/hashed.hash")"
REDIS_PASSWORD=$(openssl rand -hex 24)
printf '%s\n' "$REDIS_PASSWORD" >"$TMP/secrets/redis-password"
chmod 600 "$TMP"/secrets/*

case "$NGINX_HASH" in
  ssha) HASH=$(python3 -c 'import base64,hashlib,os,sys; s=os.urandom(8); print("{SSHA}"+base64.b64encode(hashlib.sha1(sys.argv[1].encode()+s).digest()+s).decode())' "$BASIC_SECRET") ;;
  apr1) HASH=$(openssl passwd -apr1 "$BASIC_SECRET") ;;
  sha512) HASH=$(openssl passwd -6 "$BASIC_SECRET") ;;
  plain) HASH="{PLAIN}$BASIC_SECRET" ;;
  *) die "NGINX_HASH must be ssha, apr1, sha512 or plain" ;;
esac
printf '%s:%s\n' "$BASIC_ID" "$HASH" >"$TMP/htpasswd"
chmod 644 "$TMP/htpasswd"
BASIC_AUTH="Basic $(printf '%s:%s' "$BASIC_ID" "$BASIC_SECRET" | base64 -w0)"
HASHED_AUTH="Basic $(printf '%s:%s' "$HASHED_ID" "$HASHED_SECRET" | base64 -w0)"
LIMITED_AUTH="Basic $(printf '%s:%s' "$LIMITED_ID" "$BASIC_SECRET" | base64 -w0)"

# --- configs ---------------------------------------------------------------------------------
if [[ $LOGS == on ]]; then
  PEER_ACCESS_LOG="$TMP/peer-access.log"
  SG_LOG_LEVEL=info
else
  PEER_ACCESS_LOG=off
  SG_LOG_LEVEL=warn
fi
render() {
  sed -e "s|@TMP@|$TMP|g" -e "s|@WORKERS@|${RENDER_WORKERS:-$WORKERS}|g" -e "s|@UPSTREAM_WORKERS@|$UPSTREAM_WORKERS|g" \
    -e "s|@UPSTREAM_PORT@|$UPSTREAM_PORT|g" -e "s|@PEER_PORT@|$PEER_PORT|g" \
    -e "s|@SG_PORT@|${RENDER_SG_PORT:-$SG_PORT}|g" -e "s|@SG_ADMIN_PORT@|${RENDER_SG_ADMIN_PORT:-$SG_ADMIN_PORT}|g" \
    -e "s|@PEER_ACCESS_LOG@|$PEER_ACCESS_LOG|g" -e "s|@REPLAY_CAPACITY@|$REPLAY_CAPACITY|g" \
    -e "s|@BASIC_ID@|$BASIC_ID|g" -e "s|@POST_ID@|$POST_ID|g" -e "s|@JWT_ID@|$JWT_ID|g" \
    -e "s|@HASHED_ID@|$HASHED_ID|g" -e "s|@LIMITED_ID@|$LIMITED_ID|g" -e "s|@HASH_CACHE_TTL@|$HASH_CACHE_TTL|g" -e "s|@REDIS_PORT@|$REDIS_PORT|g" \
    "$1" >"$2"
}
render "$BENCH/conf/upstream.nginx.conf.in" "$TMP/upstream.conf"
render "$BENCH/conf/peer.nginx.conf.in" "$TMP/peer.conf"
render "$BENCH/conf/secretgate.yaml.in" "$TMP/secretgate.yaml"
# The instance counted under callgrind: one worker, ports of its own.
RENDER_WORKERS=1 RENDER_SG_PORT=$CG_PORT RENDER_SG_ADMIN_PORT=$CG_ADMIN_PORT \
  render "$BENCH/conf/secretgate.yaml.in" "$TMP/secretgate-cg.yaml"
if [[ -n $BASELINE_BIN ]]; then
  [[ -x $BASELINE_BIN ]] || die "BASELINE_BIN $BASELINE_BIN is not an executable"
  RENDER_SG_PORT=$BASE_PORT RENDER_SG_ADMIN_PORT=$BASE_ADMIN_PORT \
    render "$BENCH/conf/secretgate.yaml.in" "$TMP/secretgate-base.yaml"
  # base-basic uses only the Basic client; a build from before rate limits would refuse
  # the limited one.
  sed -i '/# BEGIN limited/,/# END limited/d' "$TMP/secretgate-base.yaml"
  # A build from before hashed secrets refuses `hashing` and `hash_file`: it gets the
  # config without them (base-basic does not use the hashed client).
  if ! "$BASELINE_BIN" check --config "$TMP/secretgate-base.yaml" >/dev/null 2>"$TMP/check-base.log"; then
    sed -i '/# BEGIN hashed/,/# END hashed/d' "$TMP/secretgate-base.yaml"
    "$BASELINE_BIN" check --config "$TMP/secretgate-base.yaml" >/dev/null ||
      die "the baseline secretgate refuses its config: $(cat "$TMP/check-base.log")"
    log "BASELINE_BIN cannot read hashed secrets: its config has no hashed client"
  fi
fi
# secretgate-es256 / secretgate-eddsa: the same config, the internal header signed with an
# asymmetric key listed first (the first key signs); k1 stays listed after it.
header_instance() { # header_instance ALG NAME PORT ADMIN_PORT
  local alg=$1 name=$2
  "$BIN" new-key --alg "$alg" --out "$TMP/secrets/header-$name.pem" --kid "$name-1" >/dev/null
  RENDER_SG_PORT=$3 RENDER_SG_ADMIN_PORT=$4 render "$BENCH/conf/secretgate.yaml.in" "$TMP/secretgate-$name.yaml"
  sed -i "/^    - id: k1\$/i\\    - id: $name-1\n      algorithm: $alg\n      file: $TMP/secrets/header-$name.pem" "$TMP/secretgate-$name.yaml"
  grep -q "algorithm: $alg" "$TMP/secretgate-$name.yaml" || die "secretgate-$name config: no $alg key"
  "$BIN" check --config "$TMP/secretgate-$name.yaml" >/dev/null || die "secretgate-$name config"
}
if [[ $HEADERS == on ]]; then
  header_instance ES256 es256 "$ES_PORT" "$ES_ADMIN_PORT"
  header_instance EdDSA eddsa "$ED_PORT" "$ED_ADMIN_PORT"
fi
if [[ $REDIS == on ]]; then
  RENDER_SG_PORT=$RSG_PORT RENDER_SG_ADMIN_PORT=$RSG_ADMIN_PORT \
    render "$BENCH/conf/secretgate.yaml.in" "$TMP/secretgate-redis.yaml"
  render "$BENCH/conf/state-redis.yaml.in" "$TMP/state-redis.yaml"
  cat "$TMP/state-redis.yaml" >>"$TMP/secretgate-redis.yaml"
  "$BIN" check --config "$TMP/secretgate-redis.yaml" >/dev/null || die "secretgate-redis config"
  # The password in a config file, not on redis-server's command line (ps shows that).
  (
    umask 077
    cat >"$TMP/redis/redis.conf" <<EOF
port $REDIS_PORT
bind 127.0.0.1
save ""
appendonly no
dir $TMP/redis
logfile $TMP/redis.log
daemonize no
requirepass $REDIS_PASSWORD
EOF
  )
fi
"$NGINX" -t -q -p "$TMP" -c "$TMP/upstream.conf" -e "$TMP/upstream-error.log" || die "upstream nginx config"
"$NGINX" -t -q -p "$TMP" -c "$TMP/peer.conf" -e "$TMP/peer-error.log" || die "peer nginx config"
"$BIN" check --config "$TMP/secretgate.yaml" >/dev/null || die "secretgate config"

# --- start ----------------------------------------------------------------------------------
pin() { # pin CPUS CMD... : run CMD under taskset when CPUS is set
  local cpus=$1
  shift
  if [[ -n $cpus ]]; then exec taskset -c "$cpus" "$@"; else exec "$@"; fi
}
(pin "$UPSTREAM_CPUS" "$NGINX" -p "$TMP" -c "$TMP/upstream.conf" -e "$TMP/upstream-error.log" -g 'daemon off;') &
UPSTREAM_PID=$!
PIDS+=("$UPSTREAM_PID")
(pin "$SERVER_CPUS" "$NGINX" -p "$TMP" -c "$TMP/peer.conf" -e "$TMP/peer-error.log" -g 'daemon off;') &
PEER_PID=$!
PIDS+=("$PEER_PID")
(
  export SECRETGATE_LOG=$SG_LOG_LEVEL NO_COLOR=1
  pin "$SERVER_CPUS" "$BIN" run --config "$TMP/secretgate.yaml" 2>"$TMP/secretgate.log"
) &
SG_PID=$!
PIDS+=("$SG_PID")
BASE_PID=
if [[ -n $BASELINE_BIN ]]; then
  (
    export SECRETGATE_LOG=$SG_LOG_LEVEL NO_COLOR=1
    pin "$SERVER_CPUS" "$BASELINE_BIN" run --config "$TMP/secretgate-base.yaml" 2>"$TMP/secretgate-base.log"
  ) &
  BASE_PID=$!
  PIDS+=("$BASE_PID")
fi
REDIS_PID=
ES_PID=
ED_PID=
if [[ $HEADERS == on ]]; then
  (
    export SECRETGATE_LOG=$SG_LOG_LEVEL NO_COLOR=1
    pin "$SERVER_CPUS" "$BIN" run --config "$TMP/secretgate-es256.yaml" 2>"$TMP/secretgate-es256.log"
  ) &
  ES_PID=$!
  PIDS+=("$ES_PID")
  (
    export SECRETGATE_LOG=$SG_LOG_LEVEL NO_COLOR=1
    pin "$SERVER_CPUS" "$BIN" run --config "$TMP/secretgate-eddsa.yaml" 2>"$TMP/secretgate-eddsa.log"
  ) &
  ED_PID=$!
  PIDS+=("$ED_PID")
fi
RSG_PID=
redis_cli() { REDISCLI_AUTH=$REDIS_PASSWORD redis-cli -h 127.0.0.1 -p "$REDIS_PORT" "$@"; }
if [[ $REDIS == on ]]; then
  (pin "$UPSTREAM_CPUS" redis-server "$TMP/redis/redis.conf") &
  REDIS_PID=$!
  PIDS+=("$REDIS_PID")
  for _ in $(seq 100); do
    if [[ $(redis_cli ping 2>/dev/null) == PONG ]]; then break; fi
    kill -0 "$REDIS_PID" 2>/dev/null || die "redis-server exited: $(tail -5 "$TMP/redis.log" 2>/dev/null)"
    sleep 0.1
  done
  [[ $(redis_cli ping 2>/dev/null) == PONG ]] || die "redis-server did not start (see $TMP/redis.log)"
  (
    export SECRETGATE_LOG=$SG_LOG_LEVEL NO_COLOR=1
    pin "$SERVER_CPUS" "$BIN" run --config "$TMP/secretgate-redis.yaml" 2>"$TMP/secretgate-redis.log"
  ) &
  RSG_PID=$!
  PIDS+=("$RSG_PID")
fi

wait_http() { # wait_http URL: until the URL answers at all
  for _ in $(seq 100); do
    if curl -s -o /dev/null -k --max-time 1 "$1"; then return 0; fi
    sleep 0.1
  done
  return 1
}
wait_http "http://127.0.0.1:$UPSTREAM_PORT/" || die "upstream did not start (see $TMP/upstream-error.log)"
wait_http "https://127.0.0.1:$PEER_PORT/" || die "nginx peer did not start (see $TMP/peer-error.log)"
wait_http "http://127.0.0.1:$SG_ADMIN_PORT/readyz" || die "secretgate did not start: $(tail -5 "$TMP/secretgate.log")"
if [[ -n $BASELINE_BIN ]]; then
  wait_http "http://127.0.0.1:$BASE_ADMIN_PORT/readyz" || die "the baseline secretgate did not start: $(tail -5 "$TMP/secretgate-base.log")"
fi
if [[ $HEADERS == on ]]; then
  wait_http "http://127.0.0.1:$ES_ADMIN_PORT/readyz" || die "secretgate-es256 did not start: $(tail -5 "$TMP/secretgate-es256.log")"
  wait_http "http://127.0.0.1:$ED_ADMIN_PORT/readyz" || die "secretgate-eddsa did not start: $(tail -5 "$TMP/secretgate-eddsa.log")"
fi
if [[ $REDIS == on ]]; then
  wait_http "http://127.0.0.1:$RSG_ADMIN_PORT/readyz" || die "secretgate-redis did not start: $(tail -5 "$TMP/secretgate-redis.log")"
fi
SG_THREADS=$(ls "/proc/$SG_PID/task" | wc -l)
log "started: upstream pid $UPSTREAM_PID, nginx pid $PEER_PID ($WORKERS workers), secretgate pid $SG_PID ($SG_THREADS threads, workers: $WORKERS)"
if [[ $REDIS == on ]]; then log "started: redis-server pid $REDIS_PID (port $REDIS_PORT), secretgate-redis pid $RSG_PID"; fi

rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$SG_PID/status"; }
hwm_kib() { awk '/^VmHWM:/ {print $2}' "/proc/$SG_PID/status"; }
meta rss_start_kib "$(rss_kib)"

# --- smoke tests: every scenario answers 200 with the token before anything is measured ----
mint() { # mint COUNT FILE: COUNT fresh assertions, one per line (each jti is single-use)
  "$BIN" assertion --client-id "$JWT_ID" --secret-file "$TMP/secrets/jwt" --aud "$AUD" \
    --lifetime "${ASSERTION_LIFETIME}s" --count "$1" >"$2"
}
CURL=(curl -sS --cacert "$TMP/tls/ca.crt" --resolve "localhost:$PEER_PORT:127.0.0.1" --resolve "localhost:$SG_PORT:127.0.0.1" --resolve "localhost:$RSG_PORT:127.0.0.1" --resolve "localhost:$ES_PORT:127.0.0.1" --resolve "localhost:$ED_PORT:127.0.0.1" -o "$TMP/smoke.out" -w '%{http_code}')
expect() { # expect STATUS NAME CURL-ARGS...
  local want=$1 name=$2 got
  shift 2
  got=$("${CURL[@]}" "$@") || true
  if [[ $got != "$want" ]]; then die "smoke test $name: HTTP $got, expected $want: $(cat "$TMP/smoke.out" 2>/dev/null)"; fi
  if [[ $want == 200 ]] && ! grep -q '"access_token"' "$TMP/smoke.out"; then die "smoke test $name: no token in $(cat "$TMP/smoke.out")"; fi
}
expect 200 upstream -X POST -d "$GRANT" "http://127.0.0.1:$UPSTREAM_PORT/oauth2/token"
expect 200 nginx -H "Authorization: $BASIC_AUTH" -d "$GRANT" "https://localhost:$PEER_PORT/oauth2/token"
expect 401 nginx-wrong-secret -u "$BASIC_ID:wrong" -d "$GRANT" "https://localhost:$PEER_PORT/oauth2/token"
expect 200 sg-basic -H "Authorization: $BASIC_AUTH" -d "$GRANT" "https://localhost:$SG_PORT/oauth2/token"
if [[ -n $BASELINE_BIN ]]; then
  expect 200 base-basic -H "Authorization: $BASIC_AUTH" -d "$GRANT" --resolve "localhost:$BASE_PORT:127.0.0.1" "https://localhost:$BASE_PORT/oauth2/token"
fi
expect 200 sg-post -d "$GRANT&client_id=$POST_ID&client_secret=$POST_SECRET" "https://localhost:$SG_PORT/oauth2/token"
JWT_FORM=(-d "$GRANT" -d client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer)
mint 1 "$TMP/assertions/smoke.txt"
expect 200 sg-jwt "${JWT_FORM[@]}" -d "client_assertion=$(cat "$TMP/assertions/smoke.txt")" "https://localhost:$SG_PORT/oauth2/token"
metric() { # metric ADMIN_PORT NAME: the sum of NAME's samples (all label sets) on /metrics
  curl -s --max-time 2 "http://127.0.0.1:$1/metrics" |
    awk -v name="$2" '$1 == name || index($1, name "{") == 1 {s += $NF} END {printf "%d\n", s}'
}
HASH_VERIFICATIONS=secretgate_hash_verifications_total
expect 200 sg-hashed -H "Authorization: $HASHED_AUTH" -d "$GRANT" "https://localhost:$SG_PORT/oauth2/token"
# That 200 was one argon2id verification (the one a warm cache saves from then on).
[[ $(metric "$SG_ADMIN_PORT" "$HASH_VERIFICATIONS") == 1 ]] ||
  die "smoke test sg-hashed: expected 1 hash verification, /metrics says $(metric "$SG_ADMIN_PORT" "$HASH_VERIFICATIONS")"
expect 200 sg-limited -H "Authorization: $LIMITED_AUTH" -d "$GRANT" "https://localhost:$SG_PORT/oauth2/token"
if [[ $HEADERS == on ]]; then
  expect 200 sg-es256 -H "Authorization: $BASIC_AUTH" -d "$GRANT" "https://localhost:$ES_PORT/oauth2/token"
  expect 200 sg-eddsa -H "Authorization: $BASIC_AUTH" -d "$GRANT" "https://localhost:$ED_PORT/oauth2/token"
  # Each publishes its signing key: the header it signs is ES256 / EdDSA, not HS256.
  curl -s "http://127.0.0.1:$ES_ADMIN_PORT/.well-known/jwks.json" | grep -q '"ES256"' || die "secretgate-es256 publishes no ES256 key"
  curl -s "http://127.0.0.1:$ED_ADMIN_PORT/.well-known/jwks.json" | grep -q '"EdDSA"' || die "secretgate-eddsa publishes no EdDSA key"
fi
REDIS_SETTLE_AT=0
if [[ $REDIS == on ]]; then
  expect 200 redis-basic -H "Authorization: $BASIC_AUTH" -d "$GRANT" "https://localhost:$RSG_PORT/oauth2/token"
  expect 200 redis-post -d "$GRANT&client_id=$POST_ID&client_secret=$POST_SECRET" "https://localhost:$RSG_PORT/oauth2/token"
  replay_keys() { redis_cli --scan --pattern 'secretgate:replay:*' | wc -l; }
  keys_before=$(replay_keys)
  mint 1 "$TMP/assertions/smoke-redis.txt"
  expect 200 redis-jwt "${JWT_FORM[@]}" -d "client_assertion=$(cat "$TMP/assertions/smoke-redis.txt")" "https://localhost:$RSG_PORT/oauth2/token"
  # The jti is recorded in Redis (not in the process), and a replay is refused.
  [[ $(replay_keys) == $((keys_before + 1)) ]] || die "smoke test redis-jwt: no replay key in Redis ($(replay_keys) keys, $keys_before before)"
  expect 401 redis-jwt-replay "${JWT_FORM[@]}" -d "client_assertion=$(cat "$TMP/assertions/smoke-redis.txt")" "https://localhost:$RSG_PORT/oauth2/token"
  # That refusal is a failure from 127.0.0.1: for a throttle window every request from it
  # reads the shared counters (MGET) before it is served. The rounds start after it.
  REDIS_SETTLE_AT=$(($(date +%s) + THROTTLE_WINDOW + 2))
fi
log "smoke tests passed (200 with a token for every scenario$([[ $REDIS == on ]] && echo '; a replayed assertion refused by secretgate-redis, its jti in Redis'))"
# Negotiated TLS, for the report (wrk uses OpenSSL's client defaults like s_client).
tls_of() { openssl s_client -connect "127.0.0.1:$1" -servername localhost </dev/null 2>/dev/null | awk '/^New,/ {print $2, $NF}'; }
meta tls_nginx "$(tls_of "$PEER_PORT")"
meta tls_secretgate "$(tls_of "$SG_PORT")"

source "$BENCH/lib/wrk.sh"

SCENARIOS=(upstream nginx sg-basic sg-hashed sg-limited sg-post sg-jwt)
if [[ -n $BASELINE_BIN ]]; then SCENARIOS+=(base-basic); fi
if [[ $HEADERS == on ]]; then SCENARIOS+=(sg-es256 sg-eddsa); fi
if [[ $REDIS == on ]]; then SCENARIOS+=(redis-basic redis-post redis-jwt); fi

source "$BENCH/lib/instructions.sh"
if [[ $MODE == instructions ]]; then
  instructions
  meta git "$(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo unknown)$(cd "$ROOT" && git diff --quiet HEAD -- src 2>/dev/null || echo '+dirty src')"
  grep '^instructions_' "$META" | tee "$OUT_DIR/instructions.txt"
  exit 0
fi

# --- serve mode: the same setup, by hand ----------------------------------------------------
if [[ $MODE == serve ]]; then
  L="$BENCH/token.lua"
  cat <<EOF
Running (temp dir $TMP; Ctrl-C stops everything):
  upstream   pid $UPSTREAM_PID  http://127.0.0.1:$UPSTREAM_PORT/oauth2/token
  nginx      pid $PEER_PID  https://localhost:$PEER_PORT/oauth2/token
  secretgate pid $SG_PID  https://localhost:$SG_PORT/oauth2/token (log: $TMP/secretgate.log)
  secretgate-redis pid ${RSG_PID:-(REDIS=off)}  https://localhost:$RSG_PORT/oauth2/token, redis-server pid ${REDIS_PID:-(REDIS=off)} on port $REDIS_PORT (password: $TMP/secrets/redis-password)
Load, as the benchmark runs it (for secretgate-redis: port $RSG_PORT):
  BENCH_CONNECT=127.0.0.1 wrk -t$THREADS -c$CONNECTIONS -d10s --latency -s $L https://localhost:$PEER_PORT/oauth2/token -- 'body=$GRANT' 'auth=$BASIC_AUTH'
  BENCH_CONNECT=127.0.0.1 wrk -t$THREADS -c$CONNECTIONS -d10s --latency -s $L https://localhost:$SG_PORT/oauth2/token -- 'body=$GRANT' 'auth=$BASIC_AUTH'
  BENCH_CONNECT=127.0.0.1 wrk -t$THREADS -c$CONNECTIONS -d10s --latency -s $L https://localhost:$SG_PORT/oauth2/token -- 'body=$GRANT' 'auth=$HASHED_AUTH'
  BENCH_CONNECT=127.0.0.1 wrk -t$THREADS -c$CONNECTIONS -d10s --latency -s $L https://localhost:$SG_PORT/oauth2/token -- 'body=$GRANT&client_id=$POST_ID&client_secret=$POST_SECRET'
  $BIN assertion --client-id $JWT_ID --secret-file $TMP/secrets/jwt --aud $AUD --count 200000 > $TMP/assertions/a.txt
  BENCH_CONNECT=127.0.0.1 wrk -t$THREADS -c$CONNECTIONS -d10s --latency -s $L https://localhost:$SG_PORT/oauth2/token -- 'body=$GRANT' threads=$THREADS assertions=$TMP/assertions/a.txt
EOF
  wait "$SG_PID" || true
  exit 0
fi

# --- profile mode ----------------------------------------------------------------------
if [[ $MODE == profile ]]; then
  run_wrk warmup 0 sg-basic "$WARMUP" "$CONNECTIONS"
  log "perf record on secretgate (pid $SG_PID) for ${PROFILE_SECONDS}s under sg-basic load"
  PERF_DATA="$OUT_DIR/perf-sg-basic.data"
  perf record -F 1999 -g -p "$SG_PID" -o "$PERF_DATA" -- sleep "$PROFILE_SECONDS" 2>"$TMP/perf.log" &
  PERF_PID=$!
  PIDS+=("$PERF_PID")
  run_wrk profile 1 sg-basic "$PROFILE_SECONDS" "$CONNECTIONS"
  wait "$PERF_PID" || true
  perf report -i "$PERF_DATA" --no-children --sort dso,symbol --stdio 2>/dev/null | grep -v '^$' | head -150 >"$OUT_DIR/profile-flat.txt" || true
  perf report -i "$PERF_DATA" --children --sort symbol --stdio -g none 2>/dev/null | grep -v '^$' | head -150 >"$OUT_DIR/profile-children.txt" || true
  log "profile: $OUT_DIR/profile-flat.txt (self time) and profile-children.txt (inclusive); data in $PERF_DATA"
  sed -n '1,60p' "$OUT_DIR/profile-flat.txt"
  exit 0
fi

# --- warm-up, rounds, fixed-rate latency --------------------------------------------------
# Logs are checked from here on: start-up probes and the smoke tests' deliberate 401
# come before. secretgate's workers write their lines in batches, at least every 100 ms
# (src/logsink.rs): the smoke tests' lines are out after a pause.
sleep 0.5
LOG_FILES=(peer-error.log upstream-error.log secretgate.log peer-access.log secretgate-redis.log secretgate-es256.log secretgate-eddsa.log)
declare -A LOG_OFFSET
for f in "${LOG_FILES[@]}"; do LOG_OFFSET[$f]=$(stat -c %s "$TMP/$f" 2>/dev/null || echo 0); done
measured() { tail -c +$((${LOG_OFFSET[$1]} + 1)) "$TMP/$1" 2>/dev/null || true; }
log "warm-up: ${WARMUP}s per scenario"
for s in "${SCENARIOS[@]}"; do run_wrk warmup 0 "$s" "$WARMUP" "$CONNECTIONS"; done
meta rss_after_warmup_kib "$(rss_kib)"

if [[ $REDIS == on ]]; then
  # Basic and post on secretgate-redis ask Redis nothing once no failure from 127.0.0.1 is
  # a throttle window old (the smoke tests' replay) and the subscription has been up that
  # long: measured from then on, like a replica in its steady state.
  settle=$((REDIS_SETTLE_AT - $(date +%s)))
  if ((settle > 0)); then
    log "waiting ${settle}s for secretgate-redis's throttle window to pass (the smoke tests' replay was a failure)"
    sleep "$settle"
  fi
  # Redis's command counts from here to the end of the fixed-rate runs, for the report.
  redis_cli CONFIG RESETSTAT >/dev/null
fi

# Groups compared within a round; each runs in this order in odd rounds and reversed in
# even ones, so that a drift over a round favours neither side of a ratio.
GROUPS_BASIC=(nginx)
if [[ -n $BASELINE_BIN ]]; then GROUPS_BASIC+=(base-basic); fi
GROUPS_BASIC+=(sg-basic sg-hashed sg-limited)
if [[ $HEADERS == on ]]; then GROUPS_BASIC+=(sg-es256 sg-eddsa); fi
GROUPS_POST=(sg-post)
GROUPS_JWT=(sg-jwt)
if [[ $REDIS == on ]]; then GROUPS_BASIC+=(redis-basic) GROUPS_POST+=(redis-post) GROUPS_JWT+=(redis-jwt); fi
in_order() { # in_order ROUND SCENARIO...: as given in odd rounds, reversed in even ones
  local r=$1 i
  shift
  local g=("$@")
  if ((r % 2)); then
    printf '%s\n' "${g[@]}"
  else
    for ((i = ${#g[@]} - 1; i >= 0; i--)); do printf '%s\n' "${g[i]}"; done
  fi
}
log "$ROUNDS rounds x ${DURATION}s per scenario, $CONNECTIONS connections, $THREADS wrk threads"
for r in $(seq "$ROUNDS"); do
  order=(upstream)
  mapfile -t -O 1 order < <(in_order "$r" "${GROUPS_BASIC[@]}"; in_order "$r" "${GROUPS_POST[@]}"; in_order "$r" "${GROUPS_JWT[@]}")
  for s in "${order[@]}"; do run_wrk load "$r" "$s" "$DURATION" "$CONNECTIONS"; done
done
meta rss_after_rounds_kib "$(rss_kib)"

if [[ $RATE == auto ]]; then
  RATE=$(python3 - "$RESULTS" <<'EOF'
import statistics, sys
rows = {}
for line in open(sys.argv[1]).read().splitlines()[1:]:
    phase, rnd, scen, fields = line.split("\t")
    if phase == "load" and scen != "upstream":
        d = dict(kv.split("=") for kv in fields.split())
        rows.setdefault(scen, []).append(float(d["rps"]))
slowest = min(statistics.median(v) for v in rows.values())
print(max(100, int(slowest / 2 / 100) * 100))
EOF
  )
fi
# Each connection waits delay_ms after every response: ~10 ms between requests per
# connection, as many connections as that takes (a multiple of THREADS).
LAT_CONNECTIONS=$(((RATE / 100 + THREADS - 1) / THREADS * THREADS))
((LAT_CONNECTIONS >= THREADS)) || LAT_CONNECTIONS=$THREADS
LAT_DELAY=$(((LAT_CONNECTIONS * 1000 + RATE / 2) / RATE))
((LAT_DELAY >= 1)) || LAT_DELAY=1
log "fixed rate ~$RATE req/s: $LAT_CONNECTIONS connections, ${LAT_DELAY} ms between requests on each, ${LAT_DURATION}s per scenario"
meta rate "$RATE"
meta lat_connections "$LAT_CONNECTIONS"
meta lat_delay_ms "$LAT_DELAY"
for s in "${SCENARIOS[@]}"; do run_wrk latency 1 "$s" "$LAT_DURATION" "$LAT_CONNECTIONS" "$LAT_DELAY"; done
meta rss_after_latency_kib "$(rss_kib)"
# What the hashed client cost: verifications (1 = the smoke test's; the rest were cache
# hits), and what Redis did during the rounds and fixed-rate runs.
meta hash_verifications "$(metric "$SG_ADMIN_PORT" "$HASH_VERIFICATIONS")"
meta hash_cache_hits "$(metric "$SG_ADMIN_PORT" 'secretgate_hash_verify_cache_total{result="hit"}')"
# The limited client's limit is never reached: a 429 would have made its run invalid.
meta rate_limited "$(metric "$SG_ADMIN_PORT" secretgate_rate_limited_total)"
if [[ $REDIS == on ]]; then
  meta redis_commands "$(redis_cli INFO commandstats | tr -d '\r' |
    awk -F'[:,=]' '/^cmdstat_/ {sub("cmdstat_", "", $1); printf "%s%s=%s", sep, $1, $3; sep = " "}')"
  meta redis_used_memory "$(redis_cli INFO memory | tr -d '\r' | awk -F: '$1 == "used_memory_human" {print $2}')"
  meta redis_state_errors "$(metric "$RSG_ADMIN_PORT" secretgate_state_errors_total)"
  meta redis_replay_rejections "$(metric "$RSG_ADMIN_PORT" secretgate_replay_rejections_total)"
  meta rss_redis_instance_kib "$(awk '/^VmRSS:/ {print $2}' "/proc/$RSG_PID/status")"
fi

if ((SOAK > 0)); then
  log "soak: ${SOAK}s of secretgate Basic at full load, RSS every 5 s"
  samples="$(rss_kib)"
  (
    for _ in $(seq $((SOAK / 5))); do
      sleep 5
      awk '/^VmRSS:/ {print $2}' "/proc/$SG_PID/status"
    done
  ) >"$TMP/soak-rss.txt" &
  SAMPLER=$!
  run_wrk soak 1 sg-basic "$SOAK" "$CONNECTIONS"
  wait "$SAMPLER" || true
  meta soak_rss_kib "$samples $(tr '\n' ' ' <"$TMP/soak-rss.txt")"
fi
if [[ $INSTRUCTIONS == on ]]; then instructions; fi
meta rss_end_kib "$(rss_kib)"
meta rss_hwm_kib "$(hwm_kib)"
meta sg_threads "$(ls "/proc/$SG_PID/task" | wc -l)"

# --- logs ---------------------------------------------------------------------------------
# What was logged during the measured part (from the warm-up on). nginx: anything at error
# level or worse; secretgate: WARN/ERROR lines; access logs (LOGS=on): statuses other than
# 200, by status (both log 499 for requests wrk abandons when a run's time is up).
# secretgate's access line: `INFO secretgate::access: response request_id=… status=200 …`
# (`abandoned` instead of `response` for a 499; WARN for a 5xx of its own).
ERR_RE='\[(error|crit|alert|emerg)\]'
SG_RE='(^|[[:space:]])(WARN|ERROR)[[:space:]]'
sg_access_lines() { grep -c ' secretgate::access: ' || true; }
sg_access_non200() {
  grep ' secretgate::access: ' | grep -o ' status=[0-9]*' | sed 's/.*=//' | grep -v '^200$' |
    sort | uniq -c | awk '{printf "%s%s x%s", sep, $2, $1; sep=", "}'
}
meta nginx_error_lines "$({ measured peer-error.log; measured upstream-error.log; } | grep -c -E "$ERR_RE" || true)"
meta nginx_warn_lines "$({ measured peer-error.log; measured upstream-error.log; } | grep -c -F '[warn]' || true)"
meta sg_warn_error_lines "$(measured secretgate.log | grep -c -E "$SG_RE" || true)"
meta sg_log_bytes "$(stat -c %s "$TMP/secretgate.log")"
if [[ $REDIS == on ]]; then
  meta sg_redis_warn_error_lines "$(measured secretgate-redis.log | grep -c -E "$SG_RE" || true)"
  if [[ $LOGS == on ]]; then
    meta sg_redis_access_lines "$(measured secretgate-redis.log | sg_access_lines)"
    meta sg_redis_access_non200 "$(measured secretgate-redis.log | sg_access_non200)"
  fi
fi
if [[ $LOGS == on ]]; then
  meta sg_access_lines "$(measured secretgate.log | sg_access_lines)"
  meta sg_access_non200 "$(measured secretgate.log | sg_access_non200)"
  meta nginx_access_lines "$(measured peer-access.log | wc -l)"
  meta nginx_access_non200 "$(measured peer-access.log | awk '$9 != 200 {print $9}' | sort | uniq -c | awk '{printf "%s%s x%s", sep, $2, $1; sep=", "}')"
fi
{
  echo "--- nginx error logs during the measured runs (error level and worse, first 20)"
  { measured peer-error.log; measured upstream-error.log; } | grep -E "$ERR_RE" | head -20 || true
  echo "--- secretgate WARN/ERROR lines during the measured runs (first 20)"
  measured secretgate.log | grep -E "$SG_RE" | head -20 || true
  if [[ $REDIS == on ]]; then
    echo "--- secretgate-redis WARN/ERROR lines during the measured runs (first 20)"
    measured secretgate-redis.log | grep -E "$SG_RE" | head -20 || true
  fi
} >"$OUT_DIR/log-check.txt"

# --- report ---------------------------------------------------------------------------------
meta date "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
meta git "$(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo unknown)$(cd "$ROOT" && git diff --quiet HEAD -- src 2>/dev/null || echo '+dirty src')"
meta cpu "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')"
meta nproc "$NPROC"
meta kernel "$(uname -r)"
meta load_before "$LOAD1"
meta load_after "$(cut -d' ' -f1-3 /proc/loadavg)"
meta nginx_version "$("$NGINX" -v 2>&1 | sed 's/.*nginx\///')"
meta wrk_version "$(wrk -v 2>&1 | head -1 | awk '{print $2}')"
meta rustc "$(rustc -V)"
meta baseline "${BASELINE_BIN:-none}"
if [[ $REDIS == on ]]; then meta redis_version "$(redis-server --version | grep -o 'v=[^ ]*' | cut -d= -f2)"; fi
meta settings "ROUNDS=$ROUNDS DURATION=$DURATION CONNECTIONS=$CONNECTIONS THREADS=$THREADS WORKERS=$WORKERS UPSTREAM_WORKERS=$UPSTREAM_WORKERS PINNED=$PINNED SERVER_CPUS=${SERVER_CPUS:-all} UPSTREAM_CPUS=${UPSTREAM_CPUS:-all} WRK_CPUS=${WRK_CPUS:-all} LOGS=$LOGS NGINX_HASH=$NGINX_HASH RATE=$RATE LAT_DURATION=$LAT_DURATION SOAK=$SOAK REDIS=$REDIS HEADERS=$HEADERS HASH_CACHE_TTL=$HASH_CACHE_TTL"
cp "$RESULTS" "$OUT_DIR/results.tsv"
cp "$META" "$OUT_DIR/meta.txt"
rm -rf "$OUT_DIR/wrk" && cp -r "$TMP/wrk" "$OUT_DIR/wrk"
python3 "$BENCH/report.py" "$RESULTS" "$META" | tee "$OUT_DIR/results.md"
log "written: $OUT_DIR/results.md (raw: results.tsv, meta.txt, wrk/, log-check.txt)"
