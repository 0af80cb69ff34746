#!/usr/bin/env bash
# bench/profile.sh [build-dir] [verify] [login] [healthz]: where houston-auth's time goes,
# for the figures bench/run.sh reports. perf's hardware counters are often missing in VMs
# and containers, so this uses callgrind (instruction counts, inclusive, per function):
#
#   verify   bench_verify under callgrind, counting only inside ha_jwt_verify
#   login    houston-auth under callgrind while 200 logins run (4 browsers), after warm-up;
#            and, under strace (installed when missing), the outbound connections it opens
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

# Runs houston-auth (warmed up with 20 logins) and 300 logins by 16 browsers under
# strace with the given options, which write to the file named last.
strace_logins() { # strace-options...
  command -v strace >/dev/null || apt-get install -y -qq strace >/dev/null 2>&1 ||
    die "strace is needed (apt-get install strace)"
  local st
  start_sidecar "$PS"
  logins "$WORK/warm.txt" SIDECAR_GEN 20 4
  strace "$@" -p "$SIDECAR" &
  st=$!
  sleep 1
  logins "$WORK/traced.txt" SIDECAR_GEN 300 16
  kill -INT "$st" 2>/dev/null || true
  wait "$st" 2>/dev/null || true
  stop_pid "$SIDECAR"
}

count_connections() {
  strace_logins -f -qq -e trace=connect -o "$WORK/connect.txt"
  echo "== outbound connections opened during 300 logins (16 browsers): tenant" \
    "$(grep -c "htons($PT)" "$WORK/connect.txt"), Houston $(grep -c "htons($PH)" "$WORK/connect.txt")"
}

count_syscalls() {
  strace_logins -f -c -qq -o "$WORK/syscalls.txt"
  echo "== system calls per login during 300 logins (16 browsers), all threads"
  # strace -c columns: % time, seconds, usecs/call, calls, [errors,] syscall.
  awk '$4 ~ /^[0-9]+$/ && $NF != "total" { printf "%8.2f  %s\n", $4 / 300, $NF; sum += $4 }
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
