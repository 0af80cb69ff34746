#!/usr/bin/env bash
# Command 1: builds houston-auth and runs it on its embedded dev defaults (--dev) beside the
# bundled dev tenant and a Houston stand-in, all on loopback, then logs in once with curl
# to prove the loop works and prints how to log in yourself. Ctrl-C stops everything.
#
#   dev tenant        https://localhost:8443/            (Auth0-shaped OIDC provider)
#   sidecar           https://houston.astro.localhost:8872/
#   Houston stand-in  http://127.0.0.1:8871/             (callback contract)
#   app stand-in      https://app.astro.localhost:8873/  (where Houston sends the browser)
# The stand-in runs with its test controls (loopback only) so that the dev user can be given
# Grafana's permission and the gate (GET /v1/authorization, the ingress's auth-url) shown.
set -euo pipefail
cd "$(dirname "$0")"
# The sidecar and the two dev peers, nothing else: no test framework is installed or built.
scripts/deps.sh build dev
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DHA_BUILD_DEV_TOOLS=ON >/dev/null
cmake --build build -j"$(nproc 2>/dev/null || echo 2)" --target houston-auth dev-tenant houston-standin >/dev/null

DEV_DIR=${HOUSTON_AUTH_DEV_DIR:-$PWD/.dev}
export HOUSTON_AUTH_DEV_DIR=$DEV_DIR
mkdir -p "$DEV_DIR"
BASE=astro.localhost
SIDECAR=https://houston.$BASE:8872
APP=https://app.$BASE:8873

pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM

wait_for() { # url, what
  for _ in $(seq 1 100); do
    if curl -fsS -o /dev/null --cacert "$DEV_DIR/ca.pem" "$1" 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  echo "dev.sh: $2 did not come up at $1 (logs in $DEV_DIR)" >&2
  exit 1
}

build/tools/dev-tenant --listen 127.0.0.1:8443 --state-dir "$DEV_DIR" --issuer-host localhost:8443 \
  --client-id houston-auth-dev --client-secret dev-client-secret-not-for-production \
  --callback "$SIDECAR/v1/oauth/redirect" --logout-url "$APP/logout" --audience astronomer-ee \
  --san "houston.$BASE" --san "app.$BASE" >"$DEV_DIR/tenant.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do [ -s "$DEV_DIR/ca.pem" ] && break; sleep 0.1; done
wait_for "https://localhost:8443/.well-known/openid-configuration" "the dev tenant"

build/tools/houston-standin --listen 127.0.0.1:8871 --base-domain "$BASE" --app-url "$APP" \
  --app-listen 127.0.0.1:8873 --tls-cert "$DEV_DIR/tls.pem" --tls-key "$DEV_DIR/tls.key" \
  --sidecar-url "$SIDECAR" --test-controls >"$DEV_DIR/houston.log" 2>&1 &
pids+=($!)
wait_for "http://127.0.0.1:8871/v1/healthz" "the Houston stand-in"

build/houston-auth --dev 2>"$DEV_DIR/sidecar.log" &
pids+=($!)
wait_for "$SIDECAR/readyz" "houston-auth"

login_url="$SIDECAR/v1/oauth/start?provider=auth0&integration=self&redirect=/oauth&login_hint=dev@example.com"
jar="$DEV_DIR/cookies.txt"
rm -f "$jar"
final=$(curl -sS -L --cacert "$DEV_DIR/ca.pem" -c "$jar" -b "$jar" -o /dev/null -w '%{url_effective}' "$login_url")
if grep -q "astronomer_astro_localhost_auth" "$jar"; then
  check="self-check: logged in as dev@example.com; landed on ${final%%\?*}"
else
  check="self-check FAILED: no Houston session cookie (see $DEV_DIR/sidecar.log)"
fi

# The gate: what the ingress asks before each Grafana page, with the session just made.
session=$(awk '$6 == "astronomer_astro_localhost_auth" {print $7}' "$jar" | tail -n 1)
curl -sS -o /dev/null -X POST -H 'Content-Type: application/json' \
  --data '{"email":"dev@example.com","system":["system.monitoring.get"]}' \
  http://127.0.0.1:8871/__test/permissions || true
gate_cmd=(curl -sS -o /dev/null -D - --cacert "$DEV_DIR/ca.pem"
  -H "X-Original-URL: https://grafana.$BASE/d/home" "$SIDECAR/v1/authorization")
gate_user=$("${gate_cmd[@]}" -H "Cookie: astronomer_astro_localhost_auth=$session" 2>/dev/null |
  tr -d '\r' | awk -F': ' 'tolower($1) == "username" {print $2}') || true
if [ -n "$gate_user" ]; then
  gate_check="gate-check: Grafana allowed for $gate_user (Houston's decision, now cached 10 s)"
else
  gate_check="gate-check FAILED: the gate did not allow Grafana (see $DEV_DIR/sidecar.log)"
fi

cat <<MSG

houston-auth is running in dev mode (dev secrets: never use them in production).
  $check
  $gate_check

Log in with curl (follows every hop and keeps the cookies in a jar):
  curl -sS -L --cacert $DEV_DIR/ca.pem -c /tmp/jar -b /tmp/jar -o /dev/null -w '%{url_effective}\\n' \\
    '$login_url'
  grep astronomer_astro_localhost_auth /tmp/jar      # Houston's session cookie

Log in with a browser on this machine: open $SIDECAR/
  (*.localhost resolves to this machine; trust $DEV_DIR/ca.pem or accept the warning;
   without login_hint the dev tenant shows its login page: any email, any password)

Ask the gate as the ingress does before each UI request (the session from the jar above):
  curl -sS -o /dev/null -D - --cacert $DEV_DIR/ca.pem -H 'X-Original-URL: https://grafana.$BASE/d/home' \\
    -H "Cookie: astronomer_astro_localhost_auth=\$(awk '\$6 == "astronomer_astro_localhost_auth" {print \$7}' /tmp/jar)" \\
    $SIDECAR/v1/authorization      # 200 with username and email; 401 without the cookie

Log out:    $SIDECAR/logout
Readiness:  $SIDECAR/readyz      Metrics: $SIDECAR/metrics
Logs:       $DEV_DIR/sidecar.log, tenant.log, houston.log

Ctrl-C stops all three.
MSG
wait -n "${pids[@]}"
echo "dev.sh: a process exited; stopping (logs in $DEV_DIR)" >&2
