# Shared by bench/run.sh, profile.sh, stall.sh and authz.sh (sourced, never run): settings, process
# bookkeeping (everything started is stopped on exit, failure or Ctrl-C), /proc readings,
# the build, and the peers (dev tenant, Houston stand-in) on free loopback ports.
# shellcheck shell=bash disable=SC2034  # settings are read by the scripts that source this

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=$(realpath -m "${BUILD_DIR:-$ROOT/build-bench}")
CONC=${BENCH_CONCURRENCY:-16}
WARMUP=64
BASE=astro.localhost
CLIENT_ID=houston-auth-bench
CLIENT_SECRET=bench-client-secret-$RANDOM$RANDOM
HOUSTON_COOKIE=astronomer_astro_localhost_auth
MODS=/usr/lib/apache2/modules
HZ=$(getconf CLK_TCK)
PATH=$PATH:/usr/sbin

say() { printf 'bench: %s\n' "$*" >&2; }
die() {
  say "FAILED: $*"
  exit 1
}

# ---- processes: every pid in PIDS is stopped on exit ----
PIDS=()
WORK=
APACHE=
cleanup() {
  local rc=$? pid kids=""
  trap - EXIT INT TERM
  # Apache's children are ours too: note them before their parent goes.
  [ -n "$APACHE" ] && kids=$(children_of "$APACHE")
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  for pid in $kids; do kill -KILL "$pid" 2>/dev/null || true; done
  if [ -n "$WORK" ] && [ -d "$WORK" ]; then
    if [ "$rc" -ne 0 ] || [ "${BENCH_KEEP:-0}" = 1 ]; then
      say "logs kept in $WORK"
    else
      rm -rf "$WORK"
    fi
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

stop_pid() { # pid: TERM, wait up to 10 s, KILL, reap, and forget it
  local pid=$1 p keep=()
  if kill -TERM "$pid" 2>/dev/null; then
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null || true
  for p in "${PIDS[@]}"; do [ "$p" = "$pid" ] || keep+=("$p"); done
  PIDS=("${keep[@]}")
}

wait_http() { # url status what [curl args...]
  local url=$1 want=$2 what=$3 got
  shift 3
  for _ in $(seq 1 300); do
    got=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$@" "$url" 2>/dev/null || true)
    [ "$got" = "$want" ] && return 0
    sleep 0.05
  done
  die "$what did not answer $want at $url (logs in $WORK)"
}

# ---- /proc readings ----
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
sys_ticks() { awk '{print $15}' "/proc/$1/stat"; }
children_of() { cat /proc/[0-9]*/stat 2>/dev/null | awk -v pp="$1" '$4 == pp {print $1}'; }
tree_ticks() { # pid: its CPU ticks, its reaped children's, and its live children's
  local t c
  t=$(awk '{print $14 + $15 + $16 + $17}' "/proc/$1/stat")
  for c in $(children_of "$1"); do t=$((t + $(ticks "$c" 2>/dev/null || echo 0))); done
  echo "$t"
}
tree_sys_ticks() { # pid: the system part of tree_ticks
  local t c
  t=$(awk '{print $15 + $17}' "/proc/$1/stat")
  for c in $(children_of "$1"); do t=$((t + $(sys_ticks "$c" 2>/dev/null || echo 0))); done
  echo "$t"
}
status_kb() { awk -v k="$2:" '$1 == k {print $2}' "/proc/$1/status"; }
rollup_kb() { # pid field(Pss|Private_Dirty|...) from smaps_rollup
  awk -v k="$2:" '$1 == k {print $2}' "/proc/$1/smaps_rollup"
}
uss_kb() { awk '$1 == "Private_Clean:" || $1 == "Private_Dirty:" {s += $2} END {print s}' \
  "/proc/$1/smaps_rollup"; }
tree_sum() { # pid command field: command's figure summed over the process and its children
  local t c
  t=$("$2" "$1" "$3")
  for c in $(children_of "$1"); do t=$((t + $("$2" "$c" "$3" 2>/dev/null || echo 0))); done
  echo "$t"
}
tree_count() { echo $((1 + $(children_of "$1" | wc -l))); }
val() { awk -v k="$2" '$1 == k {print $2; exit}' "$1"; }
calc() { awk "BEGIN {printf \"%.${2:-3}f\", $1}"; }

# ---- the build ----
EXTRA_TARGETS=() # built beside the programs every script needs (bench/stall.sh adds its own)
bench_build() {
  say "installing what is missing (scripts/deps.sh bench)"
  "$ROOT/scripts/deps.sh" bench
  for tool in wrk nginx apache2 openssl curl taskset ldd; do
    command -v "$tool" >/dev/null || die "$tool not found"
  done
  say "building in $BUILD (Release)"
  local log
  log=$(mktemp /tmp/houston-auth-bench-build.XXXXXX)
  if ! cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DHA_BUILD_DEV_TOOLS=ON \
    -DHA_BUILD_BENCH=ON >"$log" 2>&1 ||
    ! cmake --build "$BUILD" -j2 --target houston-auth dev-tenant houston-standin bench_verify \
      bench_login bench_ready "${EXTRA_TARGETS[@]}" >>"$log" 2>&1; then
    tail -30 "$log" >&2
    die "build failed (log: $log)"
  fi
  rm -f "$log"
  B=$BUILD/bench
  WORK=$(mktemp -d /tmp/houston-auth-bench.XXXXXX)
  chmod 755 "$WORK"
  local ports
  ports=$("$B/bench_ready" --free-ports 6) || die "no free ports"
  read -r PT PH PS PA PN PR <<<"$(tr '\n' ' ' <<<"$ports")"
  TENANT=https://localhost:$PT
  CA=$WORK/ca.pem
  SIDECAR_ENV=(GLOBAL_BASE_DOMAIN="$BASE" AUTH0_ENABLED=true AUTH0_CLIENT_ID="$CLIENT_ID"
    AUTH0_BASE_DOMAIN="localhost:$PT" AUTH_SIDECAR_HOUSTON_URL="http://127.0.0.1:$PH"
    AUTH_SIDECAR_PUBLIC_URL="http://houston.$BASE:$PS" AUTH_SIDECAR_APP_URL="https://app.$BASE"
    AUTH_SIDECAR_TENANT_CA_FILE="$CA"
    AUTH0_CLIENT_SECRET="$CLIENT_SECRET" AUTH_SIDECAR_COOKIE_SECRET="$(openssl rand -base64 48)"
    # The load comes from one address at hundreds of logins a second: the exchange limits
    # (which protect a real tenant's rate limit) would refuse most of it.
    AUTH_SIDECAR_TOKEN_EXCHANGES_PER_SECOND=100000
    AUTH_SIDECAR_TOKEN_EXCHANGES_PER_CLIENT_PER_MINUTE=1000000)
  SIDECAR_GEN=(--start "http://houston.$BASE:$PS/v1/oauth/start?provider=auth0&integration=self&redirect=/oauth&login_hint=bench@example.com"
    --front "http://houston.$BASE:$PS" --tenant "$TENANT" --cacert "$CA"
    --resolve "houston.$BASE:$PS:127.0.0.1" --success-cookie "$HOUSTON_COOKIE"
    --hop-path /v1/oauth/redirect)
  APACHE_GEN=(--start "http://apache.$BASE:$PA/protected/index.html"
    --front "http://apache.$BASE:$PA" --tenant "$TENANT" --cacert "$CA"
    --resolve "apache.$BASE:$PA:127.0.0.1" --hop-path /protected/redirect_uri)
}

# ---- the peers ----
STANDIN_ARGS=() # extra flags for the Houston stand-in (bench/stall.sh: --test-controls)
TENANT_PID=
start_tenant() {
  "$BUILD/tools/dev-tenant" --listen "127.0.0.1:$PT" --state-dir "$WORK/tenant" \
    --issuer-host "localhost:$PT" --client-id "$CLIENT_ID" --client-secret "$CLIENT_SECRET" \
    --callback "http://houston.$BASE:$PS/v1/oauth/redirect" \
    --callback "http://apache.$BASE:$PA/protected/redirect_uri" \
    --logout-url "https://app.$BASE/logout" --audience astronomer-ee --test-controls \
    --log-level warn >>"$WORK/tenant.log" 2>&1 &
  TENANT_PID=$!
  PIDS+=("$TENANT_PID")
  for _ in $(seq 1 100); do [ -s "$WORK/tenant/ca.pem" ] && break; sleep 0.05; done
  install -m 644 "$WORK/tenant/ca.pem" "$CA"
  wait_http "$TENANT/.well-known/openid-configuration" 200 "the dev tenant" --cacert "$CA"
}
# The dev tenant keeps an authorization code's slot for the code's 60 s lifetime, used or
# not, and has 1024 slots: a fresh process (same state dir: same keys, CA and issuer)
# before it runs out. Its CPU is not measured, so restarting it changes no figure.
restart_tenant() {
  stop_pid "$TENANT_PID"
  start_tenant
}
# The Houston stand-in alone (bench/authz.sh needs no tenant); STANDIN is its pid.
start_standin() {
  "$BUILD/tools/houston-standin" --listen "127.0.0.1:$PH" --base-domain "$BASE" \
    --app-url "https://app.$BASE" --log-level warn "${STANDIN_ARGS[@]}" \
    >"$WORK/houston.log" 2>&1 &
  STANDIN=$!
  PIDS+=("$STANDIN")
  wait_http "http://127.0.0.1:$PH/v1/healthz" 200 "the Houston stand-in"
}
start_peers() {
  say "starting the dev tenant and the Houston stand-in"
  start_tenant
  start_standin
}
tenant_post() {
  curl -s -o /dev/null --cacert "$CA" -X POST -H 'Content-Type: application/json' \
    --data "$2" "$TENANT$1"
}
token_requests() {
  curl -s --cacert "$CA" "$TENANT/__test/stats" | grep -o '"token_requests": *[0-9]*' |
    grep -o '[0-9]*$'
}

# Starts houston-auth (plain HTTP) on port $1 with extra command words before the binary
# (e.g. a profiler); SIDECAR is its pid (the profiler's when there is one).
start_sidecar() {
  local port=$1
  shift
  env "${SIDECAR_ENV[@]}" AUTH_SIDECAR_LISTEN="127.0.0.1:$port" "$@" "$BUILD/houston-auth" \
    2>>"$WORK/sidecar.log" &
  SIDECAR=$!
  PIDS+=("$SIDECAR")
  wait_http "http://127.0.0.1:$port/readyz" 200 "houston-auth"
}

logins() { # out-file gen-array-name logins concurrency
  local -n gen=$2
  "$B/bench_login" "${gen[@]}" --logins "$3" --concurrency "$4" >"$1" ||
    die "load generator failed ($1)"
  [ "$(val "$1" logins_failed)" = 0 ] ||
    die "$(val "$1" logins_failed) logins failed in $1: $(grep first_error "$1" || true)"
}
