#!/usr/bin/env bash
# bench/run.sh [build-dir]: every houston-auth benchmark, side by side with its reference,
# in one run on this machine. Installs what it needs (scripts/deps.sh bench), builds in
# build-dir (default build-bench, Release), starts the dev tenant, the Houston stand-in,
# houston-auth, Apache + mod_auth_openidc and nginx on free loopback ports, measures, stops
# every process it started (also on failure or Ctrl-C), prints one table and writes it to
# bench/results.md. About 2 minutes. See bench/README.md for what each figure means.
#
# Knobs (environment): BENCH_LOGINS (measured logins per relying party, default 1600),
# BENCH_CONCURRENCY (16), BENCH_PEAK_LOGINS (logins in the 256-concurrent run, 768),
# BENCH_WRK ("-t2 -c64 -d5s"), BENCH_KEEP=1 keeps the work directory with every log.
set -euo pipefail
BUILD_DIR=${1:-}
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"

LOGINS=${BENCH_LOGINS:-1600}
PEAK_CONC=256
PEAK_LOGINS=${BENCH_PEAK_LOGINS:-768}
WRK_ARGS=${BENCH_WRK:-"-t2 -c64 -d5s"}
CHUNK=900 # logins per dev-tenant process, warm-up included (it has 1024 code slots)

# ---- histogram quantiles from two /metrics scrapes ----
hist_q() { # before after q -> milliseconds, interpolated inside the bucket
  awk -v q="$3" -v name="houston_auth_redirect_own_seconds_bucket{le=\"" '
    function le_of(line) { s = substr(line, length(name) + 1); return substr(s, 1, index(s, "\"") - 1) }
    FNR == NR { if (index($0, name) == 1) before[le_of($0)] = $2; next }
    index($0, name) == 1 { le[n] = le_of($0); cum[n] = $2 - before[le[n]]; n++ }
    END {
      if (n == 0 || cum[n - 1] == 0) { print "n/a"; exit }
      rank = q * cum[n - 1]; lo = 0; prev = 0
      for (i = 0; i < n; i++) {
        hi = (le[i] == "+Inf") ? lo : le[i] + 0
        if (cum[i] >= rank && cum[i] > prev) {
          printf "%.3f", 1000 * (lo + (hi - lo) * (rank - prev) / (cum[i] - prev)); exit
        }
        prev = cum[i]; lo = hi
      }
    }' "$1" "$2"
}
hist_count() { # before after
  awk '/^houston_auth_redirect_own_seconds_count/ {v[FILENAME] = $2; f[++n] = FILENAME}
       END {print v[f[2]] - v[f[1]]}' "$1" "$2"
}

# ---- wrk output: requests/s, p50 and p99 in ms ----
wrk_read() { # file rps|p50|p99
  awk -v f="$2" '
    function ms(v) { if (v ~ /us$/) return v / 1000; if (v ~ /ms$/) return v + 0; if (v ~ /s$/) return v * 1000; return v + 0 }
    /Requests\/sec/ {rps = $2} $1 == "50%" {p50 = ms($2)} $1 == "99%" {p99 = ms($2)}
    END { if (f == "rps") printf "%.0f", rps; else if (f == "p50") printf "%.3f", p50; else printf "%.3f", p99 }' "$1"
}

# ---- sizes ----
closure_files() { # files...: their shared-library closure, each library once
  ldd "$@" 2>/dev/null | awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// && $2 ~ /^\(/ {print $1}' |
    xargs -r readlink -f | sort -u
}
closure_bytes() { closure_files "$@" | xargs -r stat -c %s | awk '{s += $1} END {print s + 0}'; }
closure_count() { closure_files "$@" | wc -l; }

# ---- the table ----
ROWS=()
row() { ROWS+=("| $1 | $2 | $3 | $4 | $5 | $6 |"); } # figure ours ref ratio goal met
met() { if awk "BEGIN {exit !($1)}"; then echo yes; else echo NO; fi; }

# ---- CPU per login, in chunks that fit one dev-tenant process ----
measure() { # sidecar|apache gen-array-name logins -> M_TICKS (the relying party's CPU ticks),
  # M_SYS (the part of them spent in the kernel)
  local done=0 n i=1 a b as bs
  M_TICKS=0
  M_SYS=0
  while [ "$done" -lt "$3" ]; do
    n=$(($3 - done < CHUNK ? $3 - done : CHUNK))
    a=$(cpu_"$1")
    as=$(sys_"$1")
    logins "$WORK/${1}_cpu$i.txt" "$2" "$n" "$CONC"
    b=$(cpu_"$1")
    bs=$(sys_"$1")
    M_TICKS=$((M_TICKS + b - a))
    M_SYS=$((M_SYS + bs - as))
    done=$((done + n))
    i=$((i + 1))
    restart_tenant
  done
}
cpu_sidecar() { ticks "$SIDECAR"; }
cpu_apache() { tree_ticks "$APACHE"; }
sys_sidecar() { sys_ticks "$SIDECAR"; }
sys_apache() { tree_sys_ticks "$APACHE"; }

bench_build
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
MHD_THREADS=$(nproc)
[ "$MHD_THREADS" -gt 8 ] && MHD_THREADS=8 # server.c: one I/O thread per core, at most 8

# =====================================================================================
# The machine is shared: the two programs take turns, three rounds back to back, and the
# round with the median ratio is reported, so a burst of other work skews one round rather
# than one side of the comparison.
say "1/5 verification: bench_verify and openssl speed rsa2048 in turn, 3 rounds, one thread, CPU 0"
for round in 1 2 3; do
  taskset -c 0 "$B/bench_verify" 3 >"$WORK/verify.$round.txt" || die "bench_verify failed"
  taskset -c 0 openssl speed -seconds 3 rsa2048 2>/dev/null |
    awk '/^rsa 2048 bits/ {print $NF}' >"$WORK/speed.$round.txt"
  [ -s "$WORK/speed.$round.txt" ] || die "openssl speed gave no figure"
done
V_ROUND=$(for r in 1 2 3; do
  echo "$(calc "$(val "$WORK/verify.$r.txt" verify_per_s) / $(cat "$WORK/speed.$r.txt")" 4) $r"
done | sort -g | sed -n '2{s/.* //;p}')
cp "$WORK/verify.$V_ROUND.txt" "$WORK/verify.txt"
V_OURS=$(val "$WORK/verify.txt" verify_per_s)
V_REF=$(cat "$WORK/speed.$V_ROUND.txt")
V_ROUNDS="$(for r in 1 2 3; do printf '%s/%s ' "$(calc "$(val "$WORK/verify.$r.txt" verify_per_s)" 0)" "$(calc "$(cat "$WORK/speed.$r.txt")" 0)"; done)"
if [ -z "$V_OURS" ] || [ -z "$V_REF" ]; then die "verification benchmark gave no figure"; fi
V_RATIO=$(calc "$V_OURS / $V_REF")

# =====================================================================================
start_peers
say "2/5 + 4/5 houston-auth: idle memory, CPU per login, own time, peak memory"
start_sidecar "$PS"
sleep 0.5
S_IDLE_KB=$(status_kb "$SIDECAR" VmRSS)
S_IDLE_PSS=$(rollup_kb "$SIDECAR" Pss)
S_IDLE_USS=$(uss_kb "$SIDECAR")
logins "$WORK/sidecar_warm.txt" SIDECAR_GEN "$WARMUP" "$CONC"
curl -s "http://127.0.0.1:$PS/metrics" >"$WORK/metrics0.txt"
measure sidecar SIDECAR_GEN "$LOGINS"
curl -s "http://127.0.0.1:$PS/metrics" >"$WORK/metrics1.txt"
S_CPU_MS=$(calc "$M_TICKS * 1000 / $HZ / $LOGINS" 3)
S_SYS_MS=$(calc "$M_SYS * 1000 / $HZ / $LOGINS" 3)
S_P50=$(hist_q "$WORK/metrics0.txt" "$WORK/metrics1.txt" 0.5)
S_P99=$(hist_q "$WORK/metrics0.txt" "$WORK/metrics1.txt" 0.99)
S_HIST_N=$(hist_count "$WORK/metrics0.txt" "$WORK/metrics1.txt")
logins "$WORK/sidecar_peak.txt" SIDECAR_GEN "$PEAK_LOGINS" "$PEAK_CONC"
S_PEAK_KB=$(status_kb "$SIDECAR" VmHWM)
S_THREADS=$(status_kb "$SIDECAR" Threads)
restart_tenant

# =====================================================================================
say "3/5 probe throughput: wrk $WRK_ARGS on houston-auth /healthz and on nginx"
# shellcheck disable=SC2086
wrk $WRK_ARGS --latency "http://127.0.0.1:$PS/healthz" >"$WORK/wrk_sidecar.txt"
mkdir -p "$WORK/nginx/tmp"
cat >"$WORK/nginx/nginx.conf" <<CONF
worker_processes $MHD_THREADS;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $WORK/nginx/tmp/body;
  proxy_temp_path $WORK/nginx/tmp/proxy;
  fastcgi_temp_path $WORK/nginx/tmp/fastcgi;
  uwsgi_temp_path $WORK/nginx/tmp/uwsgi;
  scgi_temp_path $WORK/nginx/tmp/scgi;
  server {
    listen 127.0.0.1:$PN;
    location /healthz { return 200 "ok"; }
  }
}
CONF
nginx -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" -g 'daemon off;' 2>"$WORK/nginx/stderr.log" &
NGINX=$!
PIDS+=("$NGINX")
wait_http "http://127.0.0.1:$PN/healthz" 200 "nginx"
# shellcheck disable=SC2086
wrk $WRK_ARGS --latency "http://127.0.0.1:$PN/healthz" >"$WORK/wrk_nginx.txt"
stop_pid "$NGINX"
P_OURS=$(wrk_read "$WORK/wrk_sidecar.txt" rps)
P_REF=$(wrk_read "$WORK/wrk_nginx.txt" rps)
P_RATIO=$(calc "$P_OURS / $P_REF")

# =====================================================================================
# The token_delay_ms fault holds every token request made while it is set, so: set it,
# start 32 logins, wait until the tenant holds their token requests (peerConnections, 64 by
# default, lets all 32 reach it), clear it, then time /healthz and 64 other logins.
say "design check: /healthz and 64 other logins while 32 logins wait on a 2 s token delay"
slow_round() { # tag
  wrk -t1 -c8 -d1s --latency "http://127.0.0.1:$PS/healthz" >"$WORK/wrk_$1.txt" &
  local w=$!
  PIDS+=("$w")
  logins "$WORK/others_$1.txt" SIDECAR_GEN 64 64
  wait "$w" || die "wrk failed ($WORK/wrk_$1.txt)"
}
slow_round normal
before=$(token_requests)
tenant_post /__test/fault '{"token_delay_ms":2000}'
"$B/bench_login" "${SIDECAR_GEN[@]}" --logins 32 --concurrency 32 >"$WORK/stuck.txt" &
STUCK=$!
PIDS+=("$STUCK")
want=32
for _ in $(seq 1 100); do
  [ $(($(token_requests) - before)) -ge "$want" ] && break
  sleep 0.02
done
STUCK_SEEN=$(($(token_requests) - before))
tenant_post /__test/fault '{"token_delay_ms":null}'
slow_round stuck
wait "$STUCK" || true
H_N=$(wrk_read "$WORK/wrk_normal.txt" p99)
H_S=$(wrk_read "$WORK/wrk_stuck.txt" p99)
L_N=$(val "$WORK/others_normal.txt" login_p99_ms)
L_S=$(val "$WORK/others_stuck.txt" login_p99_ms)

# =====================================================================================
say "5/5 start to ready: houston-auth, median of 5"
env "${SIDECAR_ENV[@]}" AUTH_SIDECAR_LISTEN="127.0.0.1:$PR" "$B/bench_ready" \
  --url "http://127.0.0.1:$PR/readyz" --status 200 --runs 5 --log "$WORK/ready.log" \
  -- "$BUILD/houston-auth" >"$WORK/ready_sidecar.txt" || die "houston-auth did not get ready"
stop_pid "$SIDECAR"
restart_tenant

# =====================================================================================
say "2/5 + 4/5 reference: Apache 2.4 (mpm_event) + mod_auth_openidc"
AP=$WORK/apache
mkdir -p "$AP/htdocs/protected" "$AP/run" "$AP/lock"
echo "protected page" >"$AP/htdocs/protected/index.html"
echo "ok" >"$AP/htdocs/ping.txt"
chmod -R a+rX "$AP"
chmod 777 "$AP/lock" "$AP/run"
user_lines=
[ "$(id -u)" = 0 ] && user_lines=$'User www-data\nGroup www-data'
# One access-log line per request, as houston-auth logs one per login request.
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
sleep 0.5
A_IDLE_KB=$(tree_sum "$APACHE" status_kb VmRSS)
A_IDLE_PSS=$(tree_sum "$APACHE" rollup_kb Pss)
A_IDLE_PROCS=$(tree_count "$APACHE")
logins "$WORK/apache_warm.txt" APACHE_GEN "$WARMUP" "$CONC"
measure apache APACHE_GEN "$LOGINS"
A_CPU_MS=$(calc "$M_TICKS * 1000 / $HZ / $LOGINS" 3)
A_SYS_MS=$(calc "$M_SYS * 1000 / $HZ / $LOGINS" 3)
logins "$WORK/apache_peak.txt" APACHE_GEN "$PEAK_LOGINS" "$PEAK_CONC"
A_PEAK_KB=$(tree_sum "$APACHE" status_kb VmHWM)
A_PEAK_PROCS=$(tree_count "$APACHE")
stop_pid "$APACHE"
APACHE=
say "5/5 reference: Apache start to its first redirect to the tenant, median of 5"
"$B/bench_ready" --url "http://apache.$BASE:$PA/protected/index.html" --status 302 \
  --resolve "apache.$BASE:$PA:127.0.0.1" --runs 5 --log "$AP/ready.log" \
  -- apache2 -f "$AP/httpd.conf" -DFOREGROUND >"$WORK/ready_apache.txt" ||
  die "Apache did not get ready"

# =====================================================================================
row "ID-token checks per second, 1 thread, round with the median ratio of 3 (ref: openssl speed rsa2048 verify/s)" \
  "$(calc "$V_OURS" 0)" "$(calc "$V_REF" 0)" "$V_RATIO" "≥ 0.85" "$(met "$V_RATIO >= 0.85")"
VI_OURS=$(val "$WORK/verify.txt" interleaved_verify_per_s)
VI_REF=$(val "$WORK/verify.txt" interleaved_ref_per_s)
VI_RATIO=$(calc "$VI_OURS / $VI_REF")
row "the same, interleaved in 20 ms slices in one process (ref: openssl speed's verify loop, EVP_PKEY_verify)" \
  "$(calc "$VI_OURS" 0)" "$(calc "$VI_REF" 0)" "$VI_RATIO" "≥ 0.85" "$(met "$VI_RATIO >= 0.85")"
C_RATIO=$(calc "$S_CPU_MS / $A_CPU_MS")
row "CPU per login, ms (ref: Apache + mod_auth_openidc, all processes)" \
  "$S_CPU_MS" "$A_CPU_MS" "$C_RATIO" "≤ 0.10" "$(met "$C_RATIO <= 0.10")"
row "own time per /v1/oauth/redirect p50, ms ($S_HIST_N requests)" "$S_P50" "—" "—" "—" "—"
P99_MET=NO
[ "$S_P99" != n/a ] && P99_MET=$(met "$S_P99 <= 2")
row "own time per /v1/oauth/redirect p99, ms" "$S_P99" "—" "—" "≤ 2" "$P99_MET"
row "/healthz requests per second, wrk $WRK_ARGS (ref: nginx return 200, $MHD_THREADS workers)" \
  "$P_OURS" "$P_REF" "$P_RATIO" "≥ 0.8" "$(met "$P_RATIO >= 0.8")"
S_IDLE=$(calc "$S_IDLE_KB / 1024" 1)
row "RSS idle after start, MiB (ref: sum of $A_IDLE_PROCS Apache processes)" "$S_IDLE" \
  "$(calc "$A_IDLE_KB / 1024" 1)" "$(calc "$S_IDLE_KB / $A_IDLE_KB")" "≤ 8" "$(met "$S_IDLE <= 8")"
S_PEAK=$(calc "$S_PEAK_KB / 1024" 1)
row "RSS peak (VmHWM), $PEAK_CONC concurrent logins, MiB (ref: sum of $A_PEAK_PROCS processes)" \
  "$S_PEAK" "$(calc "$A_PEAK_KB / 1024" 1)" "$(calc "$S_PEAK_KB / $A_PEAK_KB")" "≤ 32" \
  "$(met "$S_PEAK <= 32")"
R_OURS=$(val "$WORK/ready_sidecar.txt" ready_ms_median)
R_REF=$(val "$WORK/ready_apache.txt" ready_ms_median)
row "start to ready, ms, median of 5 (ref: Apache to its first 302 to the tenant)" "$R_OURS" \
  "$R_REF" "$(calc "$R_OURS / $R_REF")" "≤ 50" "$(met "$R_OURS <= 50")"
AP_FILES=(/usr/sbin/apache2 "$MODS/mod_mpm_event.so" "$MODS/mod_authn_core.so"
  "$MODS/mod_authz_core.so" "$MODS/mod_authz_user.so" "$MODS/mod_auth_openidc.so")
BIN_OURS=$(stat -c %s "$BUILD/houston-auth")
BIN_REF=$(cat "${AP_FILES[@]}" | wc -c)
row "binary, KiB (ref: apache2 + the 5 modules loaded)" "$(calc "$BIN_OURS / 1024" 0)" \
  "$(calc "$BIN_REF / 1024" 0)" "$(calc "$BIN_OURS / $BIN_REF")" "report" "—"
LIB_OURS=$(closure_bytes "$BUILD/houston-auth")
LIB_REF=$(closure_bytes "${AP_FILES[@]}")
row "shared-library closure (ldd), MiB ($(closure_count "$BUILD/houston-auth") vs $(closure_count "${AP_FILES[@]}") files)" \
  "$(calc "$LIB_OURS / 1048576" 1)" "$(calc "$LIB_REF / 1048576" 1)" \
  "$(calc "$LIB_OURS / $LIB_REF")" "report" "—"
row "/healthz p99, wrk -t1 -c8, while $STUCK_SEEN logins hang on a 2 s token delay, ms (ref: no delay)" \
  "$H_S" "$H_N" "$(calc "$H_S / $H_N")" "≤ 2×ref + 1 ms" "$(met "$H_S <= 2 * $H_N + 1")"
row "64 other logins p99 during that delay, ms (ref: no delay)" "$L_S" "$L_N" \
  "$(calc "$L_S / $L_N")" "≤ 2×ref + 1 ms" "$(met "$L_S <= 2 * $L_N + 1")"

# =====================================================================================
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)
detail() { val "$WORK/$1.txt" "$2"; }
{
  echo "# houston-auth benchmarks"
  echo
  echo "$(date -u '+%Y-%m-%d %H:%M UTC'); $(nproc) CPUs ($(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo));"
  echo "Debian $(cat /etc/debian_version), $(openssl version | cut -d' ' -f1-2), $(apache2 -v | awk '/version/ {print $3}'),"
  echo "mod_auth_openidc $(dpkg-query -W -f='${Version}' libapache2-mod-auth-openidc 2>/dev/null), nginx $(nginx -v 2>&1 | cut -d/ -f2)."
  echo "Command: \`bench/run.sh\`. Load average before/after: $LOAD_BEFORE / $LOAD_AFTER (other work on"
  echo "the machine skews every figure; each pair is measured in this run, less than a minute apart)."
  echo
  echo "| figure | houston-auth | reference | ratio | goal | met? |"
  echo "|---|---|---|---|---|---|"
  printf '%s\n' "${ROWS[@]}"
  echo
  echo "Details:"
  echo "- Verification: the token is $(detail verify token_bytes) bytes; signature only"
  echo "  (ha_jwt_verify_signature on a parsed token) $(calc "$(detail verify signature_per_s)" 0)/s, parsing only"
  echo "  (ha_jwt_parse) $(calc "$(detail verify parse_per_s)" 0)/s. Each round, ours/openssl:"
  echo "  ${V_ROUNDS% }."
  echo "- Logins: $LOGINS measured after $WARMUP warm-up, $CONC browsers, plain HTTP to both relying parties,"
  echo "  HTTPS to the tenant. First chunk: houston-auth $(detail sidecar_cpu1 logins_per_s) logins/s, login p50"
  echo "  $(detail sidecar_cpu1 login_p50_ms) ms, p99 $(detail sidecar_cpu1 login_p99_ms) ms, /v1/oauth/redirect p99 $(detail sidecar_cpu1 hop_p99_ms) ms as the browser saw it;"
  echo "  Apache $(detail apache_cpu1 logins_per_s) logins/s, login p50 $(detail apache_cpu1 login_p50_ms) ms, p99 $(detail apache_cpu1 login_p99_ms) ms, redirect_uri p99"
  echo "  $(detail apache_cpu1 hop_p99_ms) ms. CPU is utime+stime from /proc/<pid>/stat ($HZ ticks/s);"
  echo "  of it in the kernel (stime): houston-auth $S_SYS_MS ms, Apache $A_SYS_MS ms per login."
  echo "- Memory: houston-auth idle PSS $(calc "$S_IDLE_PSS / 1024" 1) MiB, private (USS) $(calc "$S_IDLE_USS / 1024" 1) MiB; Apache idle"
  echo "  PSS $(calc "$A_IDLE_PSS / 1024" 1) MiB over $A_IDLE_PROCS processes. Peak: $PEAK_LOGINS logins by $PEAK_CONC browsers;"
  echo "  houston-auth runs $S_THREADS threads ($MHD_THREADS I/O, 1 event loop, main)."
  echo "- Probes: p99 houston-auth $(wrk_read "$WORK/wrk_sidecar.txt" p99) ms, nginx $(wrk_read "$WORK/wrk_nginx.txt" p99) ms."
  echo "- Slow tenant: $STUCK_SEEN token requests were held 2 s. The 64 other logins"
  echo "  took p50 $(detail others_stuck login_p50_ms) ms during the delay against $(detail others_normal login_p50_ms) ms without; /healthz p50"
  echo "  $(wrk_read "$WORK/wrk_stuck.txt" p50) ms against $(wrk_read "$WORK/wrk_normal.txt" p50) ms."
  echo "- Start to ready, each run (ms): houston-auth $(grep ready_ms_runs "$WORK/ready_sidecar.txt" | cut -d' ' -f2-);"
  echo "  Apache $(grep ready_ms_runs "$WORK/ready_apache.txt" | cut -d' ' -f2-)."
} >"$WORK/results.md"
cp "$WORK/results.md" "$ROOT/bench/results.md"
echo
echo "| figure | houston-auth | reference | ratio | goal | met? |"
echo "|---|---|---|---|---|---|"
printf '%s\n' "${ROWS[@]}"
echo
say "table written to bench/results.md"
