#!/usr/bin/env bash
# bench/stall.sh [build-dir]: many browsers caught in a stall of a peer, houston-auth beside
# Apache + mod_auth_openidc, in one run on this machine. Builds like bench/run.sh (build-dir,
# default build-bench, Release), starts the dev tenant, the Houston stand-in (with its test
# controls), houston-auth, bench_floor and Apache on free loopback ports, stops every process
# it started (also on failure or Ctrl-C), prints one table and writes it to
# bench/stall-results.md. About 2.5 minutes. See "Stalls" in bench/README.md.
#
# Scenarios, each on a fresh relying party and a fresh dev tenant:
#   1. the tenant's token endpoint stalls (token_delay_ms) for BENCH_STALL_SECONDS: houston-auth
#      with BENCH_STALL_BROWSERS browsers, Apache with BENCH_STALL_APACHE_BROWSERS;
#   2. Houston's callback stalls (the stand-in's delay_ms) as long: houston-auth only;
#   and houston-auth's RSS while scenario 1's callbacks arrive in steps of 250.
#
# Knobs (environment): BENCH_STALL_BROWSERS (1000, at most 1000: the dev tenant keeps 1024
# codes), BENCH_STALL_APACHE_BROWSERS (300), BENCH_STALL_SECONDS (30), BENCH_KEEP=1 keeps the
# work directory with every log.
set -euo pipefail
# shellcheck disable=SC2034 # lib.sh reads it
BUILD_DIR=${1:-}
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"

BROWSERS=${BENCH_STALL_BROWSERS:-1000}
AP_BROWSERS=${BENCH_STALL_APACHE_BROWSERS:-300}
STALL_S=${BENCH_STALL_SECONDS:-30}
STALL_MS=$((STALL_S * 1000))
TIMEOUT_MS=5000                   # the sidecar's requestTimeoutMs, left at its default
DEADLINE_MS=$((TIMEOUT_MS + 2000)) # the goal: every browser answered within this
GIVE_UP_MS=60000                  # a browser stops waiting
STEP=250                          # callbacks per step in the RSS run, one step a second
RSS_GOAL_MIB=24
THREADS_GOAL=8
for n in "$BROWSERS" "$AP_BROWSERS"; do
  if [ "$n" -lt 1 ] || [ "$n" -gt 1000 ]; then
    die "browsers must be 1..1000 (the dev tenant keeps 1024 codes)"
  fi
done
if [ "$STALL_S" -lt 1 ] || [ "$STALL_S" -gt 60 ]; then die "BENCH_STALL_SECONDS must be 1..60"; fi

# shellcheck disable=SC2034 # lib.sh reads both
STANDIN_ARGS=(--test-controls)
EXTRA_TARGETS=(bench_stall bench_floor)
# The sidecar runs on its defaults but for the exchange limits lib.sh raises: no inherited
# connection count or timeouts.
unset AUTH_SIDECAR_PEER_CONNECTIONS AUTH_SIDECAR_REQUEST_TIMEOUT_MS AUTH_SIDECAR_CONNECT_TIMEOUT_MS
bench_build
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)

TENANT_FAULT=(--fault-url "$TENANT/__test/fault" --fault-set "{\"token_delay_ms\":$STALL_MS}"
  --fault-clear '{"token_delay_ms":null}')
HOUSTON_FAULT=(--fault-url "http://127.0.0.1:$PH/__test/fault"
  --fault-set "{\"delay_ms\":$STALL_MS}" --fault-clear '{"delay_ms":null}')
COMMON=(--stall-ms "$STALL_MS" --give-up-ms "$GIVE_UP_MS" --deadline-ms "$DEADLINE_MS"
  --probe-every-ms 200 --probe-within-ms 1000)

# ---- every 100 ms: VmRSS, VmHWM, Threads, processes (summed over children with "tree") ----
sample() { # pid out-file one|tree; stops when out-file.stop exists, the pid goes, or at 180 s
  local pid=$1 out=$2 files c
  for _ in $(seq 1 1800); do
    [ -e "$out.stop" ] && break
    kill -0 "$pid" 2>/dev/null || break
    files=("/proc/$pid/status")
    if [ "$3" = tree ]; then
      for c in $(children_of "$pid"); do files+=("/proc/$c/status"); done
    fi
    awk '$1 == "VmRSS:" {r += $2} $1 == "VmHWM:" {h += $2} $1 == "Threads:" {t += $2; p++}
      END {print r + 0, h + 0, t + 0, p + 0}' "${files[@]}" >>"$out" 2>/dev/null || true
    sleep 0.1
  done
}
peak() { awk -v c="$2" 'BEGIN {m = 0} $c > m {m = $c} END {print m}' "$1"; } # file column

# Runs bench_stall with its gen array and args while sampling pid; OUT is the figures file.
drive() { # tag gen-array-name pid one|tree [bench_stall args...]
  local tag=$1 pid=$3 mode=$4 s d
  local -n gen=$2
  shift 4
  OUT=$WORK/$tag.txt
  sample "$pid" "$OUT.samples" "$mode" &
  s=$!
  PIDS+=("$s")
  # In the background, so a signal to this script is acted on at once (cleanup stops it).
  "$B/bench_stall" "${gen[@]}" "$@" >"$OUT" 2>"$WORK/$tag.err" &
  d=$!
  PIDS+=("$d")
  if ! wait "$d"; then
    touch "$OUT.samples.stop"
    die "bench_stall failed ($tag): $(cat "$WORK/$tag.err")"
  fi
  stop_pid "$d"
  touch "$OUT.samples.stop"
  stop_pid "$s"
}

# shellcheck disable=SC2034 # read through drive's nameref
STALL_SIDECAR=("${SIDECAR_GEN[@]}" "${COMMON[@]}" --probe "http://127.0.0.1:$PS/healthz")
# shellcheck disable=SC2034
STALL_APACHE=("${APACHE_GEN[@]}" "${COMMON[@]}" --probe "http://127.0.0.1:$PA/ping.txt")

# ---- the same Apache as bench/run.sh's reference (mpm_event, 256 workers) ----
start_apache() {
  AP=$WORK/apache
  mkdir -p "$AP/htdocs/protected" "$AP/run" "$AP/lock"
  echo "protected page" >"$AP/htdocs/protected/index.html"
  echo "ok" >"$AP/htdocs/ping.txt"
  chmod -R a+rX "$AP"
  chmod 777 "$AP/lock" "$AP/run"
  local user_lines=
  [ "$(id -u)" = 0 ] && user_lines=$'User www-data\nGroup www-data'
  cat >"$AP/httpd.conf" <<CONF
ServerRoot $AP
ServerName apache.$BASE:$PA
Listen 127.0.0.1:$PA
PidFile $AP/run/httpd.pid
DefaultRuntimeDir $AP/run
Mutex file:$AP/lock default
ErrorLog $AP/error.log
LogLevel warn
LogFormat "%h %l %u %t \"%r\" %>s %b %D" timed
CustomLog $AP/access.log timed
$user_lines
LoadModule mpm_event_module $MODS/mod_mpm_event.so
LoadModule authn_core_module $MODS/mod_authn_core.so
LoadModule authz_core_module $MODS/mod_authz_core.so
LoadModule authz_user_module $MODS/mod_authz_user.so
LoadModule auth_openidc_module $MODS/mod_auth_openidc.so
StartServers 2
ServerLimit 4
ThreadLimit 64
ThreadsPerChild 64
MaxRequestWorkers 256
MinSpareThreads 64
MaxSpareThreads 256
MaxConnectionsPerChild 0
KeepAlive On
MaxKeepAliveRequests 0
KeepAliveTimeout 15
DocumentRoot $AP/htdocs
<Directory $AP/htdocs>
  Require all granted
</Directory>
OIDCProviderMetadataURL $TENANT/.well-known/openid-configuration
OIDCClientID $CLIENT_ID
OIDCClientSecret $CLIENT_SECRET
OIDCRedirectURI http://apache.$BASE:$PA/protected/redirect_uri
OIDCCryptoPassphrase $(openssl rand -hex 32)
OIDCPKCEMethod S256
OIDCSSLValidateServer On
OIDCCABundlePath $CA
OIDCScope "openid profile email"
OIDCAuthRequestParams login_hint=bench%40example.com&audience=astronomer-ee
<Location /protected>
  AuthType openid-connect
  Require valid-user
</Location>
CONF
  apache2 -f "$AP/httpd.conf" -t >"$AP/configtest.log" 2>&1 ||
    die "Apache refused its config ($AP/configtest.log)"
  apache2 -f "$AP/httpd.conf" -DFOREGROUND >"$AP/stderr.log" 2>&1 &
  APACHE=$!
  PIDS+=("$APACHE")
  wait_http "http://127.0.0.1:$PA/ping.txt" 200 "Apache"
}

# =====================================================================================
start_peers
say "1/5 idle memory: bench_floor (the sidecar's libraries, initialised) and houston-auth"
"$B/bench_floor" --listen "$PR" 2>"$WORK/floor.log" &
FLOOR=$!
PIDS+=("$FLOOR")
wait_http "http://127.0.0.1:$PR/" 200 "bench_floor"
sleep 0.5
F_RSS=$(status_kb "$FLOOR" VmRSS)
F_USS=$(uss_kb "$FLOOR")
F_THREADS=$(status_kb "$FLOOR" Threads)
stop_pid "$FLOOR"
start_sidecar "$PS"
sleep 0.5
I_RSS=$(status_kb "$SIDECAR" VmRSS)
I_USS=$(uss_kb "$SIDECAR")
I_THREADS=$(status_kb "$SIDECAR" Threads)

# =====================================================================================
say "2/5 houston-auth RSS with logins in flight: $BROWSERS callbacks in steps of $STEP, one a second, tenant stalled"
drive steps STALL_SIDECAR "$SIDECAR" one --browsers "$BROWSERS" "${TENANT_FAULT[@]}" \
  --step "$STEP" --step-ms 1000 --rss-pid "$SIDECAR" --stop-after-steps
# A fresh tenant first: the sidecar's held token requests then end at once and it stops fast.
restart_tenant
stop_pid "$SIDECAR"

# =====================================================================================
say "3/5 houston-auth, tenant token endpoint stalled ${STALL_S} s: $BROWSERS browsers at once"
start_sidecar "$PS"
before=$(token_requests) # the RSS run's sidecar may have sent this tenant a few on its way out
drive s1 STALL_SIDECAR "$SIDECAR" one --browsers "$BROWSERS" "${TENANT_FAULT[@]}"
S1_TOKENS=$(($(token_requests) - before))
restart_tenant
stop_pid "$SIDECAR"

# =====================================================================================
say "4/5 houston-auth, Houston's callback stalled ${STALL_S} s: $BROWSERS browsers at once"
start_sidecar "$PS"
drive s2 STALL_SIDECAR "$SIDECAR" one --browsers "$BROWSERS" "${HOUSTON_FAULT[@]}"
restart_tenant
stop_pid "$SIDECAR"

# =====================================================================================
say "5/5 reference: Apache + mod_auth_openidc, tenant token endpoint stalled ${STALL_S} s: $AP_BROWSERS browsers at once"
start_apache
before=$(token_requests)
drive ap STALL_APACHE "$APACHE" tree --browsers "$AP_BROWSERS" "${TENANT_FAULT[@]}"
A_TOKENS=$(($(token_requests) - before))
stop_pid "$APACHE"
APACHE=

# =====================================================================================
ROWS=()
row() { ROWS+=("| $1 | $2 | $3 | $4 | $5 | $6 |"); } # figure ours ref ratio goal met
met() { if awk "BEGIN {exit !($1)}"; then echo yes; else echo NO; fi; }
v() { val "$WORK/$1.txt" "$2"; }
mib() { calc "$1 / 1024" 1; }
secs() { calc "$1 / 1000" 1; }
answered() { # tag: "a of n", with the failures named
  local t=$1 s k extra=""
  s="$(v "$t" answered) of $(v "$t" browsers)"
  for k in reset refused gave_up other_errors unfinished; do
    [ "$(v "$t" "$k")" = 0 ] || extra="$extra, $(v "$t" "$k") ${k//_/ }"
  done
  [ -n "$extra" ] && s="$s (${extra#, })"
  echo "$s"
}
frac() { calc "$(v "$1" "$2") / $(v "$1" "$3")" 4; } # tag numerator denominator
scenario_rows() { # tag ref-tag|- what
  local t=$1 r=$2 what=$3 ours ref ratio hwm rhwm thr by=" (no reference: Apache has no Houston)"
  [ "$r" = - ] || by=" (ref: Apache + mod_auth_openidc)"
  ours=$(answered "$t")
  if [ "$r" = - ]; then ref="—" ratio="—"; else
    ref=$(answered "$r")
    ratio=$(calc "$(frac "$t" answered browsers) / $(frac "$r" answered browsers)")
  fi
  row "$what: browsers answered$by" "$ours" "$ref" "$ratio" "all" \
    "$(met "$(v "$t" answered) == $(v "$t" browsers)")"
  for q in p50 max; do
    ours=$(secs "$(v "$t" "wait_${q}_ms")")
    if [ "$r" = - ]; then ref="—" ratio="—"; else
      ref=$(secs "$(v "$r" "wait_${q}_ms")")
      ratio=$(calc "$(v "$t" "wait_${q}_ms") / $(v "$r" "wait_${q}_ms")")
    fi
    row "$what: wait for an answer, $q, s" "$ours" "$ref" "$ratio" "≤ $(secs "$DEADLINE_MS") (each)" \
      "$(met "$(v "$t" answered_in_time) == $(v "$t" browsers)")"
  done
  ours="$(v "$t" probes_in_time)/$(v "$t" probes)"
  if [ "$r" = - ]; then ref="—" ratio="—"; else
    ref="$(v "$r" probes_in_time)/$(v "$r" probes)"
    ratio=$(calc "$(frac "$t" probes_in_time probes) / $(frac "$r" probes_in_time probes)")
  fi
  by=""
  [ "$r" = - ] || by=" (ref: Apache's static file)"
  row "$what: /healthz probes answered within 1 s$by" "$ours" "$ref" "$ratio" "all" \
    "$(met "$(v "$t" probes_in_time) == $(v "$t" probes)")"
  hwm=$(peak "$WORK/$t.txt.samples" 2)
  if [ "$r" = - ]; then ref="—" ratio="—"; else
    rhwm=$(peak "$WORK/$r.txt.samples" 2)
    ref="$(mib "$rhwm") ($(peak "$WORK/$r.txt.samples" 4) processes)"
    ratio=$(calc "$hwm / $rhwm")
  fi
  row "$what: peak RSS (VmHWM), MiB" "$(mib "$hwm")" "$ref" "$ratio" "≤ $RSS_GOAL_MIB" \
    "$(met "$hwm <= $RSS_GOAL_MIB * 1024")"
  thr=$(peak "$WORK/$t.txt.samples" 3)
  row "$what: threads, peak" "$thr" "—" "—" "≤ $THREADS_GOAL" "$(met "$thr <= $THREADS_GOAL")"
}
S1="token endpoint stalled ${STALL_S} s"
S2="Houston stalled ${STALL_S} s"
scenario_rows s1 ap "$S1"
scenario_rows s2 - "$S2"

# RSS with logins in flight: the readings, and the least-squares slope through them.
R_LIST=$(awk '/^rss_kb_inflight_/ {sub("rss_kb_inflight_", "", $1); print $1, $2}' "$WORK/steps.txt")
R_SHOW=$(awk '{printf "%s%s", (NR > 1 ? " / " : ""), sprintf("%.1f", $2 / 1024)}' <<<"$R_LIST")
R_AT=$(awk '{printf "%s%s", (NR > 1 ? " / " : ""), $1}' <<<"$R_LIST")
slope() { # "x y" lines with x >= $1: the least-squares slope, KiB per login
  awk -v from="$1" '$1 >= from {n++; sx += $1; sy += $2; sxx += $1 * $1; sxy += $1 * $2}
    END {d = n * sxx - sx * sx; if (d == 0) print "n/a"; else printf "%.1f", (n * sxy - sx * sy) / d}'
}
R_SLOPE=$(slope 0 <<<"$R_LIST")
R_MARGINAL=$(slope 1 <<<"$R_LIST")
row "RSS with $R_AT logins in flight ($S1), MiB" "$R_SHOW" "—" "—" "report" "—"
row "RSS per login in flight, KiB (least-squares slope of those)" "$R_SLOPE" "—" "—" "report" "—"
row "RSS idle after /readyz, MiB (ref: bench_floor, the same libraries initialised)" \
  "$(mib "$I_RSS")" "$(mib "$F_RSS")" "$(calc "$I_RSS / $F_RSS")" "report" "—"
row "private memory (USS) idle, MiB (ref: bench_floor)" "$(mib "$I_USS")" "$(mib "$F_USS")" \
  "$(calc "$I_USS / $F_USS")" "report" "—"

# =====================================================================================
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)
details() { # tag name
  local t=$1 fails
  fails=$(($(v "$t" reset) + $(v "$t" refused) + $(v "$t" gave_up) + $(v "$t" other_errors)))
  echo "- $2: prepared in $(v "$t" prep_seconds) s (the first half of each login, 32 at a time)."
  echo "  Answers: statuses $(grep '^statuses' "$WORK/$t.txt" | cut -d' ' -f2-), p90 $(secs "$(v "$t" wait_p90_ms)") s;"
  echo "  per second waited (s:count) $(grep '^wait_histogram_s' "$WORK/$t.txt" | cut -d' ' -f2-);"
  echo "  redirected with error= $(grep '^error_codes' "$WORK/$t.txt" | cut -d' ' -f2-);"
  [ "$t" = ap ] || echo "  logins completed (Houston's cookie set): $(v "$t" success_cookie)."
  if [ "$fails" -gt 0 ]; then
    echo "  Failures: $(v "$t" reset) reset (closed without an answer), $(v "$t" refused) refused,"
    echo "  $(v "$t" gave_up) given up after $(secs "$GIVE_UP_MS") s, $(v "$t" other_errors) other; the last after $(secs "$(v "$t" failure_max_ms)") s."
  fi
  if [ "$(v "$t" fault_cleared_ms)" = -1 ]; then
    echo "  The fault was never cleared (the peer refused the control until the end)."
  else
    echo "  The fault was cleared at $(secs "$(v "$t" fault_cleared_ms)") s (the control used $(v "$t" fault_control_connections) connection(s));"
  fi
  echo "  the scenario lasted $(v "$t" stall_seconds) s. Probes p50 $(v "$t" probe_p50_ms) ms, max $(v "$t" probe_max_ms) ms."
  if grep -q '^first_error' "$WORK/$t.txt"; then
    echo "  First error: $(grep '^first_error' "$WORK/$t.txt" | cut -d' ' -f2-)."
  fi
}
{
  echo "# houston-auth under a stalled peer"
  echo
  echo "$(date -u '+%Y-%m-%d %H:%M UTC'); $(nproc) CPUs ($(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo));"
  echo "Debian $(cat /etc/debian_version), $(openssl version | cut -d' ' -f1-2), libcurl $(pkg-config --modversion libcurl),"
  echo "libmicrohttpd $(pkg-config --modversion libmicrohttpd), $(apache2 -v | awk '/version/ {print $3}'),"
  echo "mod_auth_openidc $(dpkg-query -W -f='${Version}' libapache2-mod-auth-openidc 2>/dev/null)."
  echo "Command: \`bench/stall.sh\`. Load average before/after: $LOAD_BEFORE / $LOAD_AFTER."
  echo "houston-auth: $BROWSERS browsers; Apache + mod_auth_openidc: $AP_BROWSERS browsers (its 256"
  echo "workers make more meaningless). Stall: ${STALL_S} s; houston-auth's requestTimeoutMs: $TIMEOUT_MS (default)."
  echo
  echo "| figure | houston-auth | reference | ratio | goal | met? |"
  echo "|---|---|---|---|---|---|"
  printf '%s\n' "${ROWS[@]}"
  echo
  echo "Details:"
  details s1 "houston-auth, $S1"
  echo "  The tenant counted $S1_TOKENS token requests during the scenario."
  details ap "Apache, $S1"
  echo "  The tenant counted $A_TOKENS token requests during the scenario. Apache peak threads (all processes):"
  echo "  $(peak "$WORK/ap.txt.samples" 3); peak VmRSS sum $(mib "$(peak "$WORK/ap.txt.samples" 1)") MiB."
  details s2 "houston-auth, $S2"
  echo "- Memory: the RSS run sends the callbacks $STEP at a time, one step a second, into the tenant"
  echo "  stall, and reads VmRSS just before each step and a second after the last: $R_SHOW MiB"
  echo "  at $R_AT in flight. The slope without the reading at 0 (what one more login costs once"
  echo "  the first step is in): $R_MARGINAL KiB. Idle: houston-auth $I_THREADS threads, bench_floor"
  echo "  $F_THREADS (its MHD I/O pool is the sidecar's size, with no worker threads)."
} >"$WORK/stall-results.md"
cp "$WORK/stall-results.md" "$ROOT/bench/stall-results.md"
echo
echo "| figure | houston-auth | reference | ratio | goal | met? |"
echo "|---|---|---|---|---|---|"
printf '%s\n' "${ROWS[@]}"
echo
say "table and details written to bench/stall-results.md"
