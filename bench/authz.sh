#!/usr/bin/env bash
# bench/authz.sh [build-dir]: browsers loading pages that ingress-nginx protects with
# nginx.ingress.kubernetes.io/auth-url, Houston deciding (issue 15's bench).
# Builds like bench/run.sh (build-dir, default build-bench, Release), starts the Houston
# stand-in (test controls; one Node.js process with a 10-connection database pool: at most
# BENCH_AUTHZ_POOL decisions at a time, BENCH_AUTHZ_LATENCY_MS each), the dev tenant,
# houston-auth and Debian's nginx configured as ingress-nginx renders such an Ingress, on free
# loopback ports; stops every process it started (also on failure or Ctrl-C), prints one table
# and writes it to bench/authz-results.md. About 2 minutes. See "Authorization" in
# bench/README.md.
#
# Scenarios:
#   (a) the reference: auth-url is Houston's /v1/authorization (the stand-in) directly;
#   (b) auth-url is houston-auth's /v1/authorization in front of the same stand-in;
#   gate: right after (b), with its cache warm, bench_authz sends nginx's subrequests itself
#       to houston-auth (1 browser, then all), beside the same requests to an nginx location
#       that answers a constant (one loopback HTTP hop);
#   distinct: BENCH_AUTHZ_DISTINCT requests, each with a credential never seen before, to a
#       fresh houston-auth with a small cache (BENCH_AUTHZ_DISTINCT_CAP entries, deny TTL 60 s),
#       the stand-in at 0 ms: its memory against the same process at rest.
#
# Knobs (environment): BENCH_AUTHZ_BROWSERS (50), BENCH_AUTHZ_USERS (20), BENCH_AUTHZ_SECONDS
# (10), BENCH_AUTHZ_WARMUP (2), BENCH_AUTHZ_LATENCY_MS (15), BENCH_AUTHZ_POOL (10),
# BENCH_AUTHZ_GATE_SECONDS (8), BENCH_AUTHZ_DISTINCT (100000), BENCH_AUTHZ_DISTINCT_CAP
# (20000), BENCH_AUTHZ_SIDECAR (1; 0 measures (a) only), BENCH_KEEP=1 keeps the work directory
# with every log.
set -euo pipefail
# shellcheck disable=SC2034 # lib.sh reads it
BUILD_DIR=${1:-}
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"

BROWSERS=${BENCH_AUTHZ_BROWSERS:-50}
USERS=${BENCH_AUTHZ_USERS:-20}
MEASURE_S=${BENCH_AUTHZ_SECONDS:-10}
WARMUP_S=${BENCH_AUTHZ_WARMUP:-2}
LATENCY_MS=${BENCH_AUTHZ_LATENCY_MS:-15}
POOL=${BENCH_AUTHZ_POOL:-10}
GATE_S=${BENCH_AUTHZ_GATE_SECONDS:-8}
DISTINCT=${BENCH_AUTHZ_DISTINCT:-100000}
DISTINCT_CAP=${BENCH_AUTHZ_DISTINCT_CAP:-20000}
RUN_B=${BENCH_AUTHZ_SIDECAR:-1}
TIMEOUT_MS=5000  # a browser's request gives up after this (counted as a timeout)
GATE_WARMUP_S=1  # before each gate measurement (it fetches the run's keys)
DISTINCT_DEADLINE_S=120 # the distinct run stops here, finished or not
DENY_TTL_S=60    # the distinct run's deny TTL: every refused credential stays until evicted
ALLOW_TTL_S=10   # houston-auth's default authzAllowTtlSeconds, which (b) runs with
SKIPPED_B="(b), the gate and the distinct run skipped (BENCH_AUTHZ_SIDECAR=0)"

# Eight deployments named the way Houston names releases, and the ten hosts browsed.
RELEASES=(quasaric-sun-9051 geodetic-star-1234 celestial-comet-4821 nebular-orbit-7330
  galactic-nova-2615 lunar-quasar-0987 stellar-pulsar-5542 cosmic-meteor-3179)
HOSTS=(grafana kibana "${RELEASES[@]/%/-airflow}")
NHOSTS=${#HOSTS[@]}
ROLES=(DEPLOYMENT_ADMIN DEPLOYMENT_EDITOR DEPLOYMENT_VIEWER)

int_in() { [[ $1 =~ ^[0-9]+$ ]] && [ "$1" -ge "$2" ] && [ "$1" -le "$3" ]; }
int_in "$USERS" 1 1000 || die "BENCH_AUTHZ_USERS must be 1..1000"
# Each browser is a distinct (user, host) pair, and nginx holds one connection to the
# stand-in per browser (it serves at most 256).
MAX_BROWSERS=$((USERS * NHOSTS < 200 ? USERS * NHOSTS : 200))
int_in "$BROWSERS" 1 "$MAX_BROWSERS" || die "BENCH_AUTHZ_BROWSERS must be 1..$MAX_BROWSERS"
int_in "$MEASURE_S" 1 120 || die "BENCH_AUTHZ_SECONDS must be 1..120"
int_in "$WARMUP_S" 0 30 || die "BENCH_AUTHZ_WARMUP must be 0..30"
int_in "$LATENCY_MS" 0 1000 || die "BENCH_AUTHZ_LATENCY_MS must be 0..1000"
int_in "$POOL" 1 1000 || die "BENCH_AUTHZ_POOL must be 1..1000"
# A gate run's keys are fetched in its warm-up and must not expire before its window ends.
int_in "$GATE_S" 1 $((ALLOW_TTL_S - GATE_WARMUP_S - 1)) ||
  die "BENCH_AUTHZ_GATE_SECONDS must be 1..$((ALLOW_TTL_S - GATE_WARMUP_S - 1))"
# The stand-in keeps per-key counters for 100,000 keys.
int_in "$DISTINCT" 1 100000 || die "BENCH_AUTHZ_DISTINCT must be 1..100000"
int_in "$DISTINCT_CAP" 1 4194304 || die "BENCH_AUTHZ_DISTINCT_CAP must be 1..4194304"
# houston-auth's settings are the ones each scenario passes, never inherited ones.
unset AUTH_SIDECAR_AUTHZ_ALLOW_TTL_SECONDS AUTH_SIDECAR_AUTHZ_DENY_TTL_SECONDS \
  AUTH_SIDECAR_AUTHZ_CACHE_MAX_ENTRIES AUTH_SIDECAR_AUTHZ_CACHE_MAX_MEGABYTES

# shellcheck disable=SC2034 # lib.sh reads both
STANDIN_ARGS=(--test-controls --authz-latency-ms "$LATENCY_MS" --authz-pool "$POOL")
EXTRA_TARGETS=(bench_authz)
bench_build
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
HOUSTON=http://127.0.0.1:$PH

# ---- who browses what ----
# Browser b is user b % USERS on host (u + b / USERS) % NHOSTS: every (user, host) pair at
# most once, and each user on a few hosts (tabs).
user_of() { echo $(($1 % USERS)); }
host_of() { echo $((($1 % USERS + $1 / USERS) % NHOSTS)); }
email_of() { printf 'user%02d@example.com' "$1"; }
path_of() { # host index: a page of that UI
  case "${HOSTS[$1]}" in
    grafana) echo /d/home ;;
    kibana) echo /app/kibana ;;
    *) echo /admin/ ;;
  esac
}
expect_of() { # user host: what the page says when the ingress relayed Houston's headers
  local bearer=1
  [ "$2" -lt 2 ] && bearer=0 # Grafana and Kibana get no Airflow JWT
  echo "page for $(email_of "$1") bearer=$bearer"
}

houston_post() { # path json -> the answer's body; dies unless 200
  local out
  out=$(curl -s -w '\n%{http_code}' --max-time 5 -X POST -H 'Content-Type: application/json' \
    --data "$2" "$HOUSTON$1") || die "POST $1 failed"
  [ "$(tail -n1 <<<"$out")" = 200 ] || die "POST $1 $2 answered: $out"
  sed '$d' <<<"$out"
}
json_str() { grep -o "\"$1\": *\"[^\"]*\"" | head -1 | sed 's/.*: *"\(.*\)"/\1/'; }
json_int() { grep -o "\"$1\": *[0-9-]*" | head -1 | grep -o '[0-9-]*$'; }

# Grants through /__test/permissions (Houston's users and role bindings), then a session per
# user through /__test/session, as tests/integration/test_standin_authz.c gets them: the JWT
# Houston's callback mints, sent by the browser as Houston's auth cookie.
TOKENS=()
COOKIE_NAME=
setup_users() {
  local u k b h system deployments body sep
  say "granting $USERS users their hosts and minting their sessions (stand-in test controls)"
  for ((u = 0; u < USERS; u++)); do
    system="" deployments="" sep=""
    for ((k = 0; k < NHOSTS; k++)); do
      b=$((u + k * USERS))
      [ "$b" -lt "$BROWSERS" ] || break
      h=$(host_of "$b")
      if [ "$h" -lt 2 ]; then
        system='"system.monitoring.get"'
      else
        deployments+="$sep\"${RELEASES[$((h - 2))]}\":[\"${ROLES[$(((u + h) % 3))]}\"]"
        sep=,
      fi
    done
    body="{\"email\":\"$(email_of "$u")\",\"full_name\":\"Bench User $u\",\"system\":[$system],\"deployments\":{$deployments}}"
    houston_post /__test/permissions "$body" >/dev/null
    body=$(houston_post /__test/session "{\"email\":\"$(email_of "$u")\",\"expires_in\":3600}")
    TOKENS[u]=$(json_str token <<<"$body")
    COOKIE_NAME=$(json_str cookie_name <<<"$body")
    [ -n "${TOKENS[u]}" ] || die "no session for $(email_of "$u"): $body"
  done
  [ "$COOKIE_NAME" = "$HOUSTON_COOKIE" ] || die "the stand-in's cookie is $COOKIE_NAME"
  BROWSER_FILE=$WORK/browsers.tsv
  for ((b = 0; b < BROWSERS; b++)); do
    u=$(user_of "$b")
    h=$(host_of "$b")
    printf '%s.%s\t%s\t%s=%s\t%s\n' "${HOSTS[h]}" "$BASE" "$(path_of "$h")" "$COOKIE_NAME" \
      "${TOKENS[u]}" "$(expect_of "$u" "$h")"
  done >"$BROWSER_FILE"
}

# ---- nginx as ingress-nginx renders an Ingress with auth-url ----
# Follows rootfs/etc/nginx/template/nginx.tmpl of kubernetes/ingress-nginx (read at commit
# dbb11b9) and internal/ingress/controller/template/template.go, for annotations
#   nginx.ingress.kubernetes.io/auth-url: <AUTH_URL>
#   nginx.ingress.kubernetes.io/auth-response-headers: authorization, username, email
# and the controller's defaults (auth-keepalive 0, proxy-buffering off, proxy-buffer-size 4k,
# proxy-http-version 1.1, generate-request-id, upstream-keepalive-connections 320,
# worker-processes = CPUs, max-worker-connections 16384, keep-alive 75 s / 1000 requests).
# Left out: TLS (it ends at the ingress in both scenarios), the Lua balancer and logging
# phases (a plain upstream with the same keepalive stands for the balancer), the access log
# (off, as bench/run.sh's nginx), auth-signin (the chart's 401 -> login page redirect).
# The protected pages come from a second server on the same nginx that stands for the UIs:
# it answers with the identity the ingress relayed (email header, and whether an
# Authorization: Bearer came along), which bench_authz checks on every 200.
server_block() { # host auth-url
  local host=$1 url=$2 auth_host
  auth_host=${url#*://}
  auth_host=${auth_host%%/*}
  auth_host=${auth_host%:*}
  # buildAuthLocation: "/_external-auth-" + base64url(location path) + "-" + pathType; the
  # path "/" is "Lw", the chart's pathType Prefix.
  cat <<CONF
  server {
    listen 127.0.0.1:$PN;
    server_name $host;

    location = /_external-auth-Lw-Prefix {
      internal;
      # enable-auth-access-log is false by default
      access_log off;

      # the template's auth location, as emitted without auth-cache-key or auth-method
      proxy_intercept_errors  off;
      proxy_pass_request_body off;
      proxy_set_header        Content-Length          "";
      proxy_set_header        X-Forwarded-Proto       "";
      proxy_set_header        X-Request-ID            \$req_id;

      proxy_set_header        Host                    $auth_host;
      proxy_set_header        X-Original-URL          \$scheme://\$http_host\$request_uri;
      proxy_set_header        X-Original-Method       \$request_method;
      proxy_set_header        X-Sent-From             "nginx-ingress-controller";
      proxy_set_header        X-Real-IP               \$remote_addr;
      proxy_set_header        X-Forwarded-For         \$remote_addr;
      proxy_set_header        X-Auth-Request-Redirect \$request_uri;

      proxy_buffering         off;
      proxy_buffer_size       4k;
      proxy_buffers           4 4k;
      proxy_request_buffering on;

      proxy_ssl_server_name      on;
      # the browser's headers, Cookie and Authorization among them, go to the auth URL
      proxy_pass_request_headers on;
      client_max_body_size       1m;

      # auth-keepalive 0: no upstream block, a connection per subrequest
      proxy_http_version 1.1;
      set \$target $url;
      proxy_pass \$target;
    }

    location / {
      # the template's protected location: auth_request, the cookie, then
      # buildAuthResponseHeaders: auth_request_set + proxy_set_header for each header named
      # in auth-response-headers
      auth_request     /_external-auth-Lw-Prefix;
      auth_request_set \$auth_cookie \$upstream_http_set_cookie;
      add_header       Set-Cookie \$auth_cookie;
      auth_request_set \$authHeader0 \$upstream_http_authorization;
      proxy_set_header 'authorization' \$authHeader0;
      auth_request_set \$authHeader1 \$upstream_http_username;
      proxy_set_header 'username' \$authHeader1;
      auth_request_set \$authHeader2 \$upstream_http_email;
      proxy_set_header 'email' \$authHeader2;

      proxy_set_header Host              \$host;
      proxy_set_header X-Request-ID      \$req_id;
      proxy_set_header X-Real-IP         \$remote_addr;
      proxy_set_header X-Forwarded-For   \$remote_addr;
      proxy_set_header X-Forwarded-Host  \$host;
      proxy_set_header X-Forwarded-Proto \$scheme;
      proxy_set_header Connection        "";
      proxy_http_version 1.1;
      proxy_buffering off;
      proxy_pass http://ui_pods;
    }
  }
CONF
}

write_nginx_conf() { # dir auth-url
  local dir=$1 url=$2 user_line="" h
  mkdir -p "$dir/tmp"
  # As root nginx runs its workers as nobody (tests/edge/run.sh does the same).
  [ "$(id -u)" = 0 ] && user_line="user nobody nogroup;"
  {
    cat <<CONF
$user_line
worker_processes auto;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events {
  multi_accept on;
  worker_connections 16384;
}
http {
  access_log off;
  keepalive_timeout 75s;
  keepalive_requests 1000;
  client_body_temp_path $dir/tmp/body;
  proxy_temp_path $dir/tmp/proxy;
  fastcgi_temp_path $dir/tmp/fastcgi;
  uwsgi_temp_path $dir/tmp/uwsgi;
  scgi_temp_path $dir/tmp/scgi;

  # generate-request-id: true
  map \$http_x_request_id \$req_id {
    default \$http_x_request_id;
    ""      \$request_id;
  }
  map \$http_authorization \$bearer {
    "~^Bearer ." 1;
    default      0;
  }

  upstream ui_pods {
    server 127.0.0.1:$PA;
    keepalive 320;
    keepalive_timeout 60s;
    keepalive_requests 10000;
  }

  # The UIs' pods: a small page naming the identity the ingress relayed.
  server {
    listen 127.0.0.1:$PA;
    location / {
      default_type text/plain;
      return 200 "page for \$http_email bearer=\$bearer\n";
    }
  }

CONF
    for h in "${HOSTS[@]}"; do server_block "$h.$BASE" "$url"; done
    echo "}"
  } >"$dir/nginx.conf"
}

NGINX=
start_nginx() { # tag auth-url
  local dir=$WORK/nginx-$1
  write_nginx_conf "$dir" "$2"
  nginx -t -q -e "$dir/error.log" -p "$dir" -c "$dir/nginx.conf" 2>"$dir/configtest.log" ||
    die "nginx refused its config ($dir/configtest.log)"
  nginx -e "$dir/error.log" -p "$dir" -c "$dir/nginx.conf" -g "daemon off;" 2>"$dir/stderr.log" &
  NGINX=$!
  PIDS+=("$NGINX")
  wait_http "http://127.0.0.1:$PA/" 200 "nginx"
}

# Before measuring: every host answers its page with the right identity, and Houston's
# refusals come through (no session; a user on a host without a grant).
check_front() { # tag
  local b h u got seen=" " want
  for ((b = 0; b < BROWSERS; b++)); do
    h=$(host_of "$b")
    [[ $seen == *" $h "* ]] && continue
    seen+="$h "
    u=$(user_of "$b")
    got=$(curl -s --max-time 5 --connect-to "::127.0.0.1:$PN" \
      -H "Cookie: $COOKIE_NAME=${TOKENS[u]}" -w ' %{http_code}' \
      "http://${HOSTS[h]}.$BASE$(path_of "$h")") || true
    want="$(expect_of "$u" "$h") 200"
    [ "${got//$'\n'/}" = "$want" ] || die "($1) ${HOSTS[h]}: got '$got', want '$want'"
  done
  got=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 --connect-to "::127.0.0.1:$PN" \
    "http://grafana.$BASE/d/home") || true
  [ "$got" = 401 ] || die "($1) no session: got $got, want 401"
  # user 0 browses hosts 0 .. k only; the last host is someone else's (when NHOSTS > k + 1)
  if [ "$BROWSERS" -le $((USERS * (NHOSTS - 1))) ]; then
    got=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 --connect-to "::127.0.0.1:$PN" \
      -H "Cookie: $COOKIE_NAME=${TOKENS[0]}" "http://${HOSTS[NHOSTS - 1]}.$BASE/admin/") || true
    [ "$got" = 401 ] || die "($1) a host without a grant: got $got, want 401"
  fi
}

# One bench_authz run, its figures in $WORK/<tag>.txt; dies when it cannot run.
run_authz() { # tag bench_authz-args...
  local tag=$1 d
  shift
  "$B/bench_authz" "$@" >"$WORK/$tag.txt" 2>"$WORK/$tag.err" &
  d=$!
  PIDS+=("$d")
  wait "$d" || die "bench_authz failed ($tag): $(cat "$WORK/$tag.err")"
  stop_pid "$d"
}
scrape() { # file: houston-auth's /metrics
  curl -s --max-time 5 "http://127.0.0.1:$PS/metrics" >"$1" || die "no /metrics from houston-auth"
}

# One measured run through nginx on PN; figures in $WORK/<tag>.txt, the stand-in's
# counters in $WORK/<tag>.authz.json (totals) and <tag>.calls.json (per credential and host),
# CPU ticks in $WORK/<tag>.cpu (houston-auth's too when its pid is given).
measure() { # tag [houston-auth pid]
  local tag=$1 sc=${2:-} n0 n1 s0 s1 h0=0 h1=0
  houston_post /__test/authz '{"clear_counters":true}' >/dev/null
  n0=$(tree_ticks "$NGINX")
  s0=$(ticks "$STANDIN")
  [ -n "$sc" ] && h0=$(ticks "$sc")
  run_authz "$tag" --connect "127.0.0.1:$PN" --browsers "$BROWSER_FILE" \
    --seconds "$MEASURE_S" --warmup-seconds "$WARMUP_S" --timeout-ms "$TIMEOUT_MS" \
    --counter-url "$HOUSTON/__test/authz"
  n1=$(tree_ticks "$NGINX")
  s1=$(ticks "$STANDIN")
  [ -n "$sc" ] && h1=$(ticks "$sc")
  {
    echo "nginx_ticks $((n1 - n0))"
    echo "standin_ticks $((s1 - s0))"
    echo "sidecar_ticks $((h1 - h0))"
  } >"$WORK/$tag.cpu"
  curl -s --max-time 5 "$HOUSTON/__test/authz" >"$WORK/$tag.authz.json"
  curl -s --max-time 5 "$HOUSTON/__test/authz/calls" >"$WORK/$tag.calls.json"
}

scenario_a() {
  say "(a) nginx auth-url -> Houston stand-in /v1/authorization: $BROWSERS browsers, ${MEASURE_S} s"
  start_nginx a "$HOUSTON/v1/authorization"
  check_front a
  measure a
  stop_pid "$NGINX"
}

# (b): the same nginx, auth-url pointing at houston-auth, which asks the same stand-in.
# houston-auth is ready only with the tenant's discovery and keys loaded, so the dev tenant
# runs too (idle). Then the gate figures, with (b)'s cache warm.
scenario_b() {
  say "(b) nginx auth-url -> houston-auth /v1/authorization -> Houston stand-in"
  start_tenant
  start_sidecar "$PS" AUTH_SIDECAR_AUTHZ_ALLOW_TTL_SECONDS="$ALLOW_TTL_S"
  start_nginx b "http://127.0.0.1:$PS/v1/authorization"
  check_front b
  scrape "$WORK/b.metrics0"
  measure b "$SIDECAR"
  scrape "$WORK/b.metrics1"
  gate_figures
  stop_pid "$NGINX"
  stop_pid "$SIDECAR"
}

# What the gate adds on a hit. bench_authz sends nginx's auth subrequest itself (--mode gate:
# GET /v1/authorization, X-Original-URL, the cookie, the template's other headers, a new
# connection each with Connection: close, as auth-keepalive 0) straight to houston-auth, right
# after (b), and every other request of each browser (--alternate) to the ui_pods server of
# the same nginx, which answers a constant: one loopback HTTP hop on a new connection and
# nothing else, the reference, measured at the same moments. One browser (an Airflow page: the
# largest answer, with Houston's JWT relayed), then all of them. Each run's pages get a first
# path segment of their own ("/gate1/admin/"): keys (b) never fetched, which its warm-up
# fetches, so its window (warm-up + window < the allow TTL) is all hits whatever (b) left.
# CPU ticks of houston-auth and of all of nginx go to $WORK/<tag>.cpu.
gate_run() { # tag browsers-file
  local s0 n0
  s0=$(ticks "$SIDECAR")
  n0=$(tree_ticks "$NGINX")
  run_authz "$1" --mode gate --new-connections 1 --connect "127.0.0.1:$PS" \
    --alternate "127.0.0.1:$PA" --browsers "$2" --seconds "$GATE_S" \
    --warmup-seconds "$GATE_WARMUP_S" --timeout-ms "$TIMEOUT_MS" \
    --counter-url "$HOUSTON/__test/authz"
  {
    echo "sidecar_ticks $(($(ticks "$SIDECAR") - s0))"
    echo "nginx_ticks $(($(tree_ticks "$NGINX") - n0))"
  } >"$WORK/$1.cpu"
}
gate_figures() {
  local one=$WORK/gate1.tsv all=$WORK/gateN.tsv
  awk -F'\t' -v OFS='\t' '$1 !~ /^(grafana|kibana)\./ { $2 = "/gate1" $2; print; exit }' \
    "$BROWSER_FILE" >"$one"
  [ -s "$one" ] || awk -F'\t' -v OFS='\t' '{ $2 = "/gate1" $2; print; exit }' "$BROWSER_FILE" >"$one"
  awk -F'\t' -v OFS='\t' '{ $2 = "/gateN" $2; print }' "$BROWSER_FILE" >"$all"
  say "gate: nginx's subrequests straight to houston-auth, alternating with the same to nginx's return 200: 1 and $BROWSERS browsers, ${GATE_S} s each"
  gate_run gate1 "$one"
  gate_run gateN "$all"
}

# Memory with many distinct credentials: a fresh houston-auth with at most DISTINCT_CAP
# entries and a deny TTL that keeps every refusal for the whole run; each request a cookie
# never sent before (a forged session: Houston answers 401, kept DENY_TTL_S), straight to the
# sidecar over the browsers' keep-alive connections; the stand-in at 0 ms, its pool as in (a).
# Its RSS at rest (0.5 s after ready) first, then after every tenth of the requests.
scenario_distinct() {
  say "distinct: $DISTINCT credentials never seen before -> houston-auth (at most $DISTINCT_CAP entries, deny TTL ${DENY_TTL_S} s) -> the stand-in at 0 ms"
  houston_post /__test/authz '{"latency_ms":0,"clear_counters":true}' >/dev/null
  start_sidecar "$PS" AUTH_SIDECAR_AUTHZ_CACHE_MAX_ENTRIES="$DISTINCT_CAP" \
    AUTH_SIDECAR_AUTHZ_DENY_TTL_SECONDS="$DENY_TTL_S"
  sleep 0.5
  {
    echo "rss_idle $(status_kb "$SIDECAR" VmRSS)"
    echo "hwm_idle $(status_kb "$SIDECAR" VmHWM)"
  } >"$WORK/d.mem"
  scrape "$WORK/d.metrics0"
  run_authz d --mode gate --distinct "$DISTINCT" --connect "127.0.0.1:$PS" \
    --browsers "$BROWSER_FILE" --seconds "$DISTINCT_DEADLINE_S" --timeout-ms "$TIMEOUT_MS" \
    --watch-pid "$SIDECAR" --counter-url "$HOUSTON/__test/authz"
  scrape "$WORK/d.metrics1"
  {
    echo "rss_after $(status_kb "$SIDECAR" VmRSS)"
    echo "hwm_after $(status_kb "$SIDECAR" VmHWM)"
  } >>"$WORK/d.mem"
  stop_pid "$SIDECAR"
}

start_standin
setup_users
scenario_a
if [ "$RUN_B" = 1 ]; then
  scenario_b
  scenario_distinct
else
  say "$SKIPPED_B"
fi

# =====================================================================================
v() { val "$WORK/$1.txt" "$2"; }
have() { [ -s "$WORK/$1.txt" ]; }
num() { [[ $1 =~ ^[0-9]+(\.[0-9]+)?$ ]]; }
ceil_div() { echo $((($1 + $2 - 1) / $2)); }
mib() { calc "$1 / 1024" 1; }
metric() { # file name
  val "$1" "$2"
}
metric_delta() { # tag name: after - before, over <tag>.metrics0 and 1
  echo $(($(metric "$WORK/$1.metrics1" "$2") - $(metric "$WORK/$1.metrics0" "$2")))
}
statuses() { # tag: "200: n, 401: m" (bench_authz's answers by status)
  grep '^statuses' "$WORK/$1.txt" | cut -d' ' -f2- | sed 's/:/: /g; s/ \([0-9]*: \)/, \1/g'
}
errors() { # tag
  echo "$(v "$1" errors_timeout) / $(v "$1" errors_reset) / $(v "$1" errors_refused) / $(v "$1" errors_other)"
}
max_per_key() { # tag: the most decisions for one (credential, host), from <tag>.calls.json
  grep -o '"count": *[0-9]*' "$WORK/$1.calls.json" | grep -o '[0-9]*$' | sort -n | tail -1
}
cell() { # tag what
  if ! have "$1"; then
    echo "not run"
    return
  fi
  case $2 in
    rps) calc "$(v "$1" rps)" 0 ;;
    p50 | p99 | alt_p50 | alt_p99) calc "$(v "$1" "${2}_ms")" "${3:-1}" ;;
    decisions) v "$1" decisions ;;
    decisions_run) v "$1" decisions_run ;;
    per) v "$1" decisions_per_request ;;
    per_key) max_per_key "$1" ;;
    statuses) statuses "$1" ;;
    errors) errors "$1" ;;
    identity) v "$1" identity_mismatch ;;
  esac
}
ratio() { # x y: x / y, when both are numbers and y > 0
  if num "$1" && num "$2" && [ "$(calc "($2 > 0)" 0)" = 1 ]; then
    calc "$1 / $2" 2
  else
    echo "—"
  fi
}
yes_no() { # awk condition
  if [ "$(calc "($1) ? 1 : 0" 0)" = 1 ]; then echo yes; else echo NO; fi
}
ROWS=()
row() { ROWS+=("| $1 | $2 | $3 | $4 | $5 | $6 |"); }
pair_row() { # figure what goal met: (b) beside (a)
  local b a
  b=$(cell b "$2")
  a=$(cell a "$2")
  row "$1" "$b" "$a" "$(ratio "$b" "$a")" "$3" "$4"
}
gate_row() { # figure n what(p50|p99) goal met: houston-auth beside the hop in one run
  local g h
  g=$(cell "gate$2" "$3" 3)
  h=$(cell "gate$2" "alt_$3" 3)
  row "$1" "$g" "$h" "$(ratio "$g" "$h")" "$4" "$5"
}

WINDOW_S=$((WARMUP_S + MEASURE_S))
PAIRS=$(awk -F'\t' '{split($2, p, "/"); print $1 FS p[2] FS $3}' "$BROWSER_FILE" | sort -u | wc -l)
PER_KEY_RUN=$(ceil_div "$WINDOW_S" "$ALLOW_TTL_S")
PER_KEY_WIN=$(ceil_div "$MEASURE_S" "$ALLOW_TTL_S")
if have b; then
  COALESCED=$(metric_delta b houston_auth_authz_cache_coalesced_total)
  BOUND_RUN=$((PAIRS * PER_KEY_RUN + COALESCED))
  BOUND_WIN=$((PAIRS * PER_KEY_WIN + COALESCED))
  RPS_RATIO=$(ratio "$(cell b rps)" "$(cell a rps)")
  MET_RPS=$(yes_no "$RPS_RATIO >= 20")
  MET_RUN=$(yes_no "$(cell b decisions_run) <= $BOUND_RUN")
  MET_WIN=$(yes_no "$(cell b decisions) <= $BOUND_WIN")
  MET_KEY=$(yes_no "$(cell b per_key) <= $PER_KEY_RUN")
  MET_GATE=$(yes_no "$(cell gate1 p99 3) <= 1")
  ADDED_P99=$(calc "$(cell gate1 p99 3) - $(cell gate1 alt_p99 3)" 3)
  MET_ADDED=$(yes_no "$ADDED_P99 <= 1")
else
  COALESCED=0 MET_RPS=— MET_RUN=— MET_WIN=— MET_KEY=— MET_GATE=— ADDED_P99="not run" MET_ADDED=—
  BOUND_RUN=$((PAIRS * PER_KEY_RUN)) BOUND_WIN=$((PAIRS * PER_KEY_WIN))
fi
pair_row "protected page, requests/s ($BROWSERS browsers, $USERS users, $NHOSTS hosts, ${MEASURE_S} s)" \
  rps "≥ 20" "$MET_RPS"
pair_row "page latency p50, ms" p50 report —
pair_row "page latency p99, ms" p99 report —
gate_row "the gate on a hit, 1 browser, p50, ms (ref: the same requests to nginx's return 200, alternating)" \
  1 p50 report —
gate_row "the gate on a hit, 1 browser, p99, ms (ref: the same hop)" 1 p99 "≤ 1 ms" "$MET_GATE"
row "what the gate adds over the hop at p99, 1 browser (its p99 − the hop's), ms" "$ADDED_P99" — — \
  "≤ 1 ms" "$MET_ADDED"
gate_row "the gate on a hit, $BROWSERS browsers, p50, ms (ref: the same hop)" N p50 report —
gate_row "the gate on a hit, $BROWSERS browsers, p99, ms (ref: the same hop)" N p99 report —
pair_row "Houston decisions, warm-up + measured (${WINDOW_S} s; bound: $PAIRS pairs × ⌈$WINDOW_S / $ALLOW_TTL_S⌉ + $COALESCED coalesced)" \
  decisions_run "≤ $BOUND_RUN" "$MET_RUN"
pair_row "Houston decisions, measured window only (${MEASURE_S} s; bound: $PAIRS × ⌈$MEASURE_S / $ALLOW_TTL_S⌉ + $COALESCED)" \
  decisions "≤ $BOUND_WIN" "$MET_WIN"
pair_row "most Houston decisions for one (credential, host), whole run" per_key "≤ $PER_KEY_RUN" "$MET_KEY"
pair_row "Houston decisions per page request" per report —
pair_row "answers by status" statuses — —
pair_row "transfer errors: timeout / reset / refused / other" errors 0 —
pair_row "200s without the identity Houston gave (email, Bearer on Airflow)" identity 0 —

# The distinct run: RSS after the requests (the connections closed) beside the same process
# at rest; whether RSS stopped growing once the cache was full (read while the requests went,
# at the end against the point where twice the cap had been answered: by then every new
# credential only replaces an entry); resident bytes per entry while the cache filled (the
# slope between the first reading and the last one at or below the cap), beside the bytes the
# cache accounts per entry; the cache's own figures against its caps.
d_mem() { val "$WORK/d.mem" "$1"; }
rss_point() { # awk condition on n (requests answered) -> "n rss_kb" of the last such reading
  awk "\$1 == \"rss_kb\" { n = \$2; if ($1) p = n \" \" \$3 } END { print p }" "$WORK/d.txt"
}
if have d; then
  D_ENTRIES=$(metric "$WORK/d.metrics1" houston_auth_authz_cache_entries)
  D_BYTES=$(metric "$WORK/d.metrics1" houston_auth_authz_cache_bytes)
  D_EVICT=$(metric_delta d houston_auth_authz_cache_evictions_total)
  D_MISSES=$(metric_delta d houston_auth_authz_cache_misses_total)
  read -r D_FULL_N D_FULL_KB <<<"$(rss_point "n <= $((2 * DISTINCT_CAP))")"
  read -r D_END_N D_END_KB <<<"$(rss_point 1)"
  read -r D_FIRST_N D_FIRST_KB <<<"$(rss_point "p == \"\"")"
  read -r D_CAP_N D_CAP_KB <<<"$(rss_point "n <= $DISTINCT_CAP")"
  MET_ENTRIES=$(yes_no "$D_ENTRIES <= $DISTINCT_CAP")
  row "houston-auth VmRSS after $DISTINCT distinct credentials, MiB (ref: the same process at rest)" \
    "$(mib "$(d_mem rss_after)")" "$(mib "$(d_mem rss_idle)")" \
    "$(ratio "$(d_mem rss_after)" "$(d_mem rss_idle)")" report —
  if [ -n "${D_FULL_N:-}" ] && [ "$D_END_N" -gt "$D_FULL_N" ] && [ "$D_FULL_N" -ge "$DISTINCT_CAP" ]; then
    row "VmRSS while sending, at the ${D_END_N}th answer, MiB (ref: at the ${D_FULL_N}th; the cache full from the ${DISTINCT_CAP}th)" \
      "$(mib "$D_END_KB")" "$(mib "$D_FULL_KB")" "$(ratio "$D_END_KB" "$D_FULL_KB")" \
      "flat: ≤ ref + 1 MiB" "$(yes_no "$D_END_KB <= $D_FULL_KB + 1024")"
  else
    row "VmRSS once the cache is full" "too few requests past the cap" — — "flat" —
  fi
  row "houston-auth VmHWM after them, MiB (ref: at rest)" "$(mib "$(d_mem hwm_after)")" \
    "$(mib "$(d_mem hwm_idle)")" "$(ratio "$(d_mem hwm_after)" "$(d_mem hwm_idle)")" report —
  if [ -n "${D_CAP_N:-}" ] && [ "$D_CAP_N" -gt "$D_FIRST_N" ] && [ "$D_ENTRIES" -gt 0 ]; then
    D_SLOPE=$(calc "($D_CAP_KB - $D_FIRST_KB) * 1024 / ($D_CAP_N - $D_FIRST_N)" 0)
    row "resident bytes per cache entry, ${D_FIRST_N}th to ${D_CAP_N}th answer (ref: bytes the cache accounts per entry)" \
      "$D_SLOPE" "$(calc "$D_BYTES / $D_ENTRIES" 0)" "$(ratio "$D_SLOPE" "$(calc "$D_BYTES / $D_ENTRIES" 0)")" report —
  fi
  row "decision cache entries after them (ref: the cap, authzCacheMaxEntries)" "$D_ENTRIES" \
    "$DISTINCT_CAP" "$(ratio "$D_ENTRIES" "$DISTINCT_CAP")" "≤ cap" "$MET_ENTRIES"
  row "decision cache bytes after them, MiB (ref: authzCacheMaxMegabytes)" \
    "$(calc "$D_BYTES / 1048576" 2)" 32 "$(ratio "$D_BYTES" 33554432)" "≤ cap" \
    "$(yes_no "$D_BYTES <= 33554432")"
  row "evictions during them (ref: requests answered − cap)" "$D_EVICT" \
    "$(($(v d requests) - DISTINCT_CAP))" — report —
else
  row "houston-auth memory with $DISTINCT distinct credentials" "not run" — — bounded —
fi

LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)
all_answers() { echo $(($(v "$1" "${2:-}requests") + $(v "$1" "${2:-}unmeasured"))); } # tag [alt_]
per_req_ms() { # tag ticks-key: CPU per answer, warm-up and drain included
  calc "$(val "$WORK/$1.cpu" "$2") * 1000 / $HZ / $(all_answers "$1")" 3
}
cpu_sum_ms() { # tag: nginx + stand-in + houston-auth per answer, + the client's in the window
  calc "($(val "$WORK/$1.cpu" nginx_ticks) + $(val "$WORK/$1.cpu" standin_ticks) + $(val "$WORK/$1.cpu" sidecar_ticks)) * 1000 / $HZ / $(all_answers "$1") + $(v "$1" client_cpu_ms) / $(v "$1" requests)" 3
}
details() { # tag name
  local t=$1 j=$WORK/$1.authz.json sum
  sum=$(cpu_sum_ms "$t")
  echo "- $2: $(v "$t" requests) requests answered in the window, p90 $(calc "$(v "$t" p90_ms)" 1) ms,"
  echo "  max $(calc "$(v "$t" max_ms)" 1) ms; $(v "$t" unmeasured) answers in the warm-up or after the end not counted."
  echo "  Houston's pool: at most $(json_int max_in_flight <"$j") decisions at a time, at most"
  echo "  $(json_int max_queued <"$j") waiting for a slot; its answers by status (warm-up and drain included):"
  echo "  $(grep -o '"by_status": *{[^}]*}' "$j" | sed 's/"by_status": *//'), over $(json_int keys <"$j") (credential, host) keys."
  echo "  CPU per answer (warm-up and drain included; $HZ ticks/s): nginx (all workers)"
  echo "  $(per_req_ms "$t" nginx_ticks) ms, the Houston stand-in $(per_req_ms "$t" standin_ticks) ms, houston-auth $(per_req_ms "$t" sidecar_ticks) ms;"
  echo "  bench_authz $(calc "$(v "$t" client_cpu_ms) / $(v "$t" requests)" 3) ms (the window). All four: $sum ms a page, so"
  echo "  $(nproc) cores hold at most $(calc "$(nproc) * 1000 / $sum" 0) pages/s."
  if grep -q '^first_error' "$WORK/$t.txt"; then
    echo "  First error: $(grep '^first_error' "$WORK/$t.txt" | cut -d' ' -f2-)."
  fi
}
b_cache_details() {
  echo "- (b)'s cache, /metrics before and after the measured run (warm-up, window, drain): hits"
  echo "  $(metric_delta b houston_auth_authz_cache_hits_total), misses $(metric_delta b houston_auth_authz_cache_misses_total), coalesced $COALESCED, expirations"
  echo "  $(metric_delta b houston_auth_authz_cache_expirations_total), evictions $(metric_delta b houston_auth_authz_cache_evictions_total). The decision counts: the stand-in's calls read by"
  echo "  bench_authz before its first request, at the window's start and at its end (the drain"
  echo "  sends nothing new); per (credential, host): the stand-in's per-key counters, cleared"
  echo "  before bench_authz starts and read after it ends. The bound holds per key in any interval"
  echo "  of that length: a key is fetched again only after its entry expired, more than"
  echo "  $ALLOW_TTL_S s (authzAllowTtlSeconds) after the fetch before."
}
gate_details() {
  local t n
  echo "- The gate runs (${GATE_WARMUP_S} s warm-up, ${GATE_S} s each; a new connection per request; each"
  echo "  browser alternating between houston-auth's gate and nginx's return 200):"
  for t in gate1 gateN; do
    n=$(v "$t" browsers)
    echo "  $n browser(s), houston-auth: $(calc "$(v "$t" rps)" 0) answers/s, p50 $(calc "$(v "$t" p50_ms)" 3), p90 $(calc "$(v "$t" p90_ms)" 3),"
    echo "  p99 $(calc "$(v "$t" p99_ms)" 3), max $(calc "$(v "$t" max_ms)" 3) ms; $(statuses "$t"); errors $(errors "$t");"
    echo "  Houston decisions in the window $(v "$t" decisions); its CPU per answer $(calc "$(val "$WORK/$t.cpu" sidecar_ticks) * 1000 / $HZ / $(all_answers "$t")" 3) ms."
    echo "  nginx's return 200: $(calc "$(v "$t" alt_rps)" 0) answers/s, p50 $(calc "$(v "$t" alt_p50_ms)" 3), p90 $(calc "$(v "$t" alt_p90_ms)" 3),"
    echo "  p99 $(calc "$(v "$t" alt_p99_ms)" 3), max $(calc "$(v "$t" alt_max_ms)" 3) ms; $(grep '^alt_statuses' "$WORK/$t.txt" | cut -d' ' -f2-);"
    echo "  nginx's CPU per answer $(calc "$(val "$WORK/$t.cpu" nginx_ticks) * 1000 / $HZ / $(all_answers "$t" alt_)" 3) ms (warm-up included in both)."
    echo "  Added by the gate over the hop: p50 $(calc "$(v "$t" p50_ms) - $(v "$t" alt_p50_ms)" 3) ms, p99 $(calc "$(v "$t" p99_ms) - $(v "$t" alt_p99_ms)" 3) ms."
  done
}
d_details() {
  echo "- The distinct run: $(v d requests) answers in $(calc "$(v d seconds)" 1) s ($(calc "$(v d rps)" 0)/s; $(statuses d);"
  echo "  errors $(errors d)); Houston decisions $(v d decisions_run), cache misses"
  echo "  $D_MISSES; latency p50 $(calc "$(v d p50_ms)" 2), p99 $(calc "$(v d p99_ms)" 2) ms. houston-auth: at most $DISTINCT_CAP entries and"
  echo "  32 MiB (authzCacheMaxMegabytes, default), deny TTL ${DENY_TTL_S} s. At rest: VmRSS $(mib "$(d_mem rss_idle)") MiB,"
  echo "  VmHWM $(mib "$(d_mem hwm_idle)") MiB. VmRSS / VmHWM (MiB) after each tenth of the requests:"
  echo "  $(awk '$1 == "rss_kb" {printf "%s%d: %.1f / %.1f", sep, $2, $3 / 1024, $4 / 1024; sep = ", "}' "$WORK/d.txt")."
}
TABLE_HEAD="| figure | houston-auth | reference | ratio | goal | met? |"
{
  echo "# Pages behind ingress-nginx's auth-url: Houston decides"
  echo
  echo "$(date -u '+%Y-%m-%d %H:%M UTC'); $(nproc) CPUs ($(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo));"
  echo "Debian $(cat /etc/debian_version), $(nginx -v 2>&1 | sed 's/.*: //'), libcurl $(pkg-config --modversion libcurl);"
  echo "houston-auth $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo "(no git)")$(
    git -C "$ROOT" diff --quiet HEAD -- src include tools CMakeLists.txt 'bench/*.[ch]' 'bench/*.sh' \
      2>/dev/null || echo " with local changes")."
  echo "Command: \`bench/authz.sh\`. Load average before/after: $LOAD_BEFORE / $LOAD_AFTER."
  echo "Houston stand-in: at most $POOL decisions at a time, ${LATENCY_MS} ms each (one Node.js process,"
  echo "a $POOL-connection database pool). $BROWSERS browsers (closed loop, keep-alive), $USERS users,"
  echo "$NHOSTS hosts; ${WARMUP_S} s warm-up, ${MEASURE_S} s measured. houston-auth on its defaults"
  echo "(authzAllowTtlSeconds $ALLOW_TTL_S) but for the distinct run's cap and deny TTL."
  echo "Reference: (a), nginx's auth-url straight to Houston, for the page rows; for the gate rows,"
  echo "the same requests to nginx's \`return 200\` (one loopback hop); for memory, the same process at rest."
  echo
  echo "$TABLE_HEAD"
  echo "|---|---|---|---|---|---|"
  printf '%s\n' "${ROWS[@]}"
  echo
  echo "Details:"
  details a "(a) Houston directly"
  if have b; then
    details b "(b) houston-auth in front of Houston"
    b_cache_details
    gate_details
    d_details
  else
    echo "- $SKIPPED_B."
  fi
  echo
  echo "One server block of (a)'s nginx.conf (the same for each of the $NHOSTS hosts; (b)'s"
  echo "\`\$target\` is houston-auth's /v1/authorization):"
  echo
  echo '```nginx'
  server_block "grafana.$BASE" "$HOUSTON/v1/authorization"
  echo '```'
} >"$WORK/authz-results.md"
cp "$WORK/authz-results.md" "$ROOT/bench/authz-results.md"
echo
echo "$TABLE_HEAD"
echo "|---|---|---|---|---|---|"
printf '%s\n' "${ROWS[@]}"
echo
say "table and details written to bench/authz-results.md"
