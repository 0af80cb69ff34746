#!/usr/bin/env bash
# bench/profile.sh [build-dir] [verify] [login] [healthz]: where houston-auth's time goes,
# for the figures bench/run.sh reports. perf's hardware counters are often missing in VMs
# and containers, so this uses callgrind (instruction counts, inclusive, per function):
#
#   verify   bench_verify under callgrind, counting only inside ha_jwt_verify
#   login    houston-auth under callgrind while 200 logins run (4 browsers), after warm-up;
#            and, when strace is installed, the outbound connections it opens meanwhile
#   healthz  houston-auth under callgrind while wrk -t2 -c64 -d5s asks /healthz
#   syscalls houston-auth under strace -c (every thread) during 300 logins (16 browsers):
#            system calls per login, by name (not in the default set)
#
# Default: all three. Prints the top of each profile; BENCH_KEEP=1 keeps the callgrind files.
set -euo pipefail
BUILD_DIR=
if [ $# -gt 0 ] && [ "${1#-}" = "$1" ] && [ -d "$1" ]; then
  BUILD_DIR=$1
  shift
fi
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"
WHAT=("$@")
[ ${#WHAT[@]} -eq 0 ] && WHAT=(verify login healthz)
command -v valgrind >/dev/null || {
  apt-get install -y -qq valgrind >/dev/null 2>&1 || die "valgrind is needed (apt-get install valgrind)"
}

top() { # callgrind file, lines
  callgrind_annotate --inclusive=yes "$1" 2>/dev/null | grep -E '^ *[0-9,]+ \(' |
    grep -v -E 'clone|start_thread|below main|libc_start' | head -"$2" | cut -c1-140 || true
}

profile_verify() {
  say "profile: ha_jwt_verify (bench_verify under callgrind)"
  valgrind --tool=callgrind --toggle-collect=ha_jwt_verify \
    --callgrind-out-file="$WORK/cg.verify" "$B/bench_verify" 2 >"$WORK/verify.txt" 2>/dev/null
  echo "== ha_jwt_verify, inclusive instructions ($(val "$WORK/verify.txt" verify_per_s) checks/s under valgrind)"
  top "$WORK/cg.verify" 30
}

# Runs houston-auth under callgrind while $1 (a function) loads it; prints the profile.
profile_sidecar() { # load-function title
  local pid
  start_sidecar "$PS" valgrind --tool=callgrind --callgrind-out-file="$WORK/cg.$1.%p"
  pid=$SIDECAR
  logins "$WORK/warm.txt" SIDECAR_GEN 20 4
  callgrind_control -z "$pid" >/dev/null 2>&1
  "$1"
  callgrind_control -d "$pid" >/dev/null 2>&1
  stop_pid "$pid"
  echo "== $2, inclusive instructions"
  top "$(find "$WORK" -name "cg.$1.*.1" | head -1)" 45
}

load_login() { logins "$WORK/login.txt" SIDECAR_GEN 200 4; }
load_healthz() { wrk -t2 -c64 -d5s "http://127.0.0.1:$PS/healthz" >"$WORK/wrk.txt"; }

count_connections() {
  command -v strace >/dev/null || return 0
  local st
  start_sidecar "$PS"
  logins "$WORK/warm.txt" SIDECAR_GEN 20 4
  strace -f -qq -e trace=connect -o "$WORK/connect.txt" -p "$SIDECAR" &
  st=$!
  sleep 1
  logins "$WORK/conn.txt" SIDECAR_GEN 300 16
  kill -INT "$st" 2>/dev/null || true
  wait "$st" 2>/dev/null || true
  stop_pid "$SIDECAR"
  echo "== outbound connections opened during 300 logins (16 browsers): tenant" \
    "$(grep -c "htons($PT)" "$WORK/connect.txt"), Houston $(grep -c "htons($PH)" "$WORK/connect.txt")"
}

count_syscalls() {
  command -v strace >/dev/null || apt-get install -y -qq strace >/dev/null 2>&1 ||
    die "strace is needed (apt-get install strace)"
  local st
  start_sidecar "$PS"
  logins "$WORK/warm.txt" SIDECAR_GEN 20 4
  strace -f -c -qq -o "$WORK/syscalls.txt" -p "$SIDECAR" &
  st=$!
  sleep 1
  logins "$WORK/sys.txt" SIDECAR_GEN 300 16
  kill -INT "$st" 2>/dev/null || true
  wait "$st" 2>/dev/null || true
  stop_pid "$SIDECAR"
  echo "== system calls per login during 300 logins (16 browsers), all threads"
  awk '$NF ~ /^[a-z_0-9]+$/ && $(NF-1) ~ /^[0-9]+$/ || $(NF-2) ~ /^[0-9]+$/ {
         calls = ($(NF-1) ~ /^[0-9]+$/) ? $(NF-1) : $(NF-2); if ($NF == "total") next
         printf "%8.2f  %s\n", calls / 300, $NF; sum += calls }
       END { printf "%8.2f  all\n", sum / 300 }' "$WORK/syscalls.txt" | sort -rn
}

bench_build
for w in "${WHAT[@]}"; do
  case "$w" in
    verify) profile_verify ;;
    login | healthz)
      [ -n "$TENANT_PID" ] || start_peers
      if [ "$w" = login ]; then
        profile_sidecar load_login "houston-auth during 200 logins"
        count_connections
        restart_tenant
      else
        profile_sidecar load_healthz "houston-auth during wrk -t2 -c64 -d5s on /healthz"
        echo "($(grep -E 'requests in' "$WORK/wrk.txt" | sed 's/^ *//') under valgrind)"
      fi
      ;;
    syscalls)
      [ -n "$TENANT_PID" ] || start_peers
      count_syscalls
      ;;
    *) die "unknown profile '$w' (verify, login, healthz, syscalls)" ;;
  esac
done
