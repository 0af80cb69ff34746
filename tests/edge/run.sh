#!/usr/bin/env bash
# The nginx edge test: Debian's nginx, configured as ingress-nginx renders the Ingress that
# deploy/ produces, in front of the sidecar and a Houston stand-in that routes like Express
# and checks ID tokens like Houston 0.9 (kid in the tenant's JWKS, exp, iss, aud; never the
# signature), with the dev tenant; all on loopback, under one mktemp directory.
#
# 1. A forged ID token (a fresh RSA key, the tenant's real kid, valid iss/aud/exp, a victim's
#    email) POSTed as Houston's callback form through nginx, under every spelling below: each
#    gets the sidecar's 403 page and no session, and Houston receives no callback.
# 2. Controls, straight to the stand-in (no nginx): the same POST gets a session under every
#    spelling Express routes to the callback (so the test can fail), and the stand-in does
#    refuse what Houston 0.9 refuses (unknown kid, wrong iss or aud, expired).
# 3. A real login through nginx (start, the tenant's authorize with login_hint, redirect,
#    Houston's hand-off inside the "pod") still ends with Houston's cookie; the sidecar's
#    probes and metrics are not reachable through nginx.
#
# Usage: tests/edge/run.sh [BUILD_DIR]   (default build; needs the houston-auth, dev-tenant
#        and houston-standin binaries there, nginx, node and npm, curl, openssl)
# Env:   HA_EDGE_BASE  the kustomize directory to render (default deploy/base; point it at a
#                      copy with other Ingress paths to see what they let through)
#        HA_EDGE_KEEP=1  keep the work directory (logs, nginx.conf) and print where it is
# Prints "N passed, N failed" and exits non-zero on any failure; bounded: every request has
# a 10 s limit, every wait 10 s.
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILD=${1:-build}
KBASE=${HA_EDGE_BASE:-deploy/base}
BASEDOM=astro.example.com
HOST=houston.$BASEDOM
APP=https://app.$BASEDOM
CLIENT=houston-auth-edge
COOKIE=astronomer_astro_example_com_auth
VICTIM=victim@example.com
REFUSED_MARK="Not available from outside"

# Spellings of Houston's callback, and whether Express 4 routes each to it (y/n: checked
# against Express 4.22.3 on Node 20, Houston's mounts). Through nginx all must be refused.
SPELLINGS=(
  "y /v1/oauth/callback"
  "y /V1/OAuth/Callback"
  "y /v1/oauth/callback/"
  "y /V1/OAUTH/CALLBACK//"
  "n //v1//oauth///callback"
  "y /v1//oauth/callback"
  "y /v1/oauth//callback"
  "y /v1//OAuth//Callback/?a=1"
  "n /v1/./oauth/callback"
  "n /v1/foo/../oauth/callback"
  "n /v1/%2e/oauth/callback"
  "n /x/%2e%2e/v1/oauth/callback"
  "n /v1/oauth/%63allback"
  "n /v1/oauth%2Fcallback"
  "n /%761/oauth/callback"
  "n /%76%31/%6F%41uth/%43allback"
  "n /v1%5C/oauth/callback"
  "y /V1\\/OAUTH/callback#"
  "y /v1\\/oauth\\/callback#x"
  "y /v1/oauth/callback\\#"
  "y /v1/oauth/Callback\\/?#"
  "y /v1/oauth/callback#frag"
  "y /v1/oauth/callback?x=1#y"
  "n /v1/oauth/callback;x"
  "y /v1/oauth/callback///a@b/#"
  "n /v1/oauth/callback%20"
)
# Targets nginx itself refuses (400) before any location.
NGINX_REFUSES=("/../v1/oauth/callback" "/v1/oauth/callback%00")

passed=0
failed=0
ok() {
  passed=$((passed + 1))
  echo "  ok    $*"
}
bad() {
  failed=$((failed + 1))
  echo "  FAIL  $*"
}
die() {
  echo "edge: $*" >&2
  echo "0 passed, 1 failed"
  exit 1
}

W=$(mktemp -d /tmp/ha-edge.XXXXXX)
pids=()
alive() { # pid: running (not gone, not a zombie)
  local st
  st=$(ps -o stat= -p "$1" 2>/dev/null || true)
  [ -n "$st" ] && [ "${st:0:1}" != Z ]
}
stop() { # pid: SIGTERM, up to 10 s, then SIGKILL
  kill "$1" 2>/dev/null || return 0
  for _ in $(seq 1 100); do alive "$1" || return 0; sleep 0.1; done
  kill -9 "$1" 2>/dev/null || true
}
cleanup() {
  [ -s "$W/nginx.pid" ] && kill "$(cat "$W/nginx.pid")" 2>/dev/null
  for p in "${pids[@]}"; do stop "$p"; done
  if [ "${HA_EDGE_KEEP:-0}" = 1 ]; then echo "edge: kept $W"; else rm -rf "$W"; fi
  return 0
}
trap cleanup EXIT

for bin in houston-auth tools/dev-tenant tools/houston-standin; do
  [ -x "$BUILD/$bin" ] || die "$BUILD/$bin is missing (build first: cmake --build $BUILD)"
done
command -v nginx >/dev/null || die "nginx is missing (scripts/deps.sh test)"
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null ||
    die "node and npm are missing"
fi

free_ports() { # n -> n distinct free loopback ports
  node -e 'const net=require("net");const n=+process.argv[1];const ss=[];let left=n;
    for(let i=0;i<n;i++){const s=net.createServer();ss.push(s);s.listen(0,"127.0.0.1",()=>{if(--left===0){
    console.log(ss.map(x=>x.address().port).join(" "));ss.forEach(x=>x.close());}});}' "$1"
}
read -r TP HP SP NP <<<"$(free_ports 4)"
PUBLIC=https://$HOST:$NP
CA=$W/tenant/ca.pem
CURL=(curl -sS --max-time 10 --cacert "$CA" --resolve "$HOST:$NP:127.0.0.1")

wait_http() { # url want-status what
  for _ in $(seq 1 100); do
    [ "$("${CURL[@]}" -o /dev/null -w '%{http_code}' "$1" 2>/dev/null || true)" = "$2" ] && return 0
    sleep 0.1
  done
  die "$3 did not answer $2 at $1 (logs in $W; HA_EDGE_KEEP=1 keeps them)"
}

# ---- the three processes, as dev.sh and tests/integration/harness.c start them ----
SECRET=$(openssl rand -hex 24)
"$BUILD/tools/dev-tenant" --listen "127.0.0.1:$TP" --state-dir "$W/tenant" \
  --issuer-host "localhost:$TP" --client-id "$CLIENT" --client-secret "$SECRET" \
  --callback "$PUBLIC/v1/oauth/redirect" --logout-url "$APP/logout" --audience astronomer-ee \
  --san "$HOST" --san "app.$BASEDOM" --test-controls >"$W/tenant.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do [ -s "$CA" ] && break; sleep 0.1; done
wait_http "https://localhost:$TP/.well-known/openid-configuration" 200 "the dev tenant"

"$BUILD/tools/houston-standin" --listen "127.0.0.1:$HP" --base-domain "$BASEDOM" \
  --app-url "$APP" --auth0-base-domain "localhost:$TP" --client-id "$CLIENT" \
  --tenant-ca "$CA" --test-controls >"$W/houston.log" 2>&1 &
pids+=($!)
wait_http "http://127.0.0.1:$HP/v1/healthz" 200 "the Houston stand-in"

env -i PATH="$PATH" ${ASAN_OPTIONS:+ASAN_OPTIONS="$ASAN_OPTIONS"} \
  ${UBSAN_OPTIONS:+UBSAN_OPTIONS="$UBSAN_OPTIONS"} ${LSAN_OPTIONS:+LSAN_OPTIONS="$LSAN_OPTIONS"} \
  GLOBAL_BASE_DOMAIN="$BASEDOM" AUTH0_CLIENT_ID="$CLIENT" AUTH0_BASE_DOMAIN="localhost:$TP" \
  AUTH0_CLIENT_SECRET="$SECRET" AUTH_SIDECAR_COOKIE_SECRET="$(openssl rand -base64 48)" \
  AUTH_SIDECAR_LISTEN="127.0.0.1:$SP" AUTH_SIDECAR_HOUSTON_URL="http://127.0.0.1:$HP" \
  AUTH_SIDECAR_PUBLIC_URL="$PUBLIC" AUTH_SIDECAR_APP_URL="$APP" \
  AUTH_SIDECAR_TENANT_CA_FILE="$CA" AUTH_SIDECAR_LOG_LEVEL=info \
  "$BUILD/houston-auth" >"$W/sidecar.log" 2>&1 &
pids+=($!)
wait_http "http://127.0.0.1:$SP/readyz" 200 "houston-auth"

# ---- nginx, with the locations ingress-nginx renders from deploy/ ----
if [ ! -d deploy/validate/node_modules ] || [ deploy/validate/package-lock.json -nt deploy/validate/node_modules ]; then
  (cd deploy/validate && npm ci --no-audit --no-fund --loglevel=error >/dev/null) || die "npm ci in deploy/validate"
  touch deploy/validate/node_modules
fi
K=${KUBECTL:-$(scripts/kubectl.sh)} || die "no kubectl to render $KBASE"
"$K" kustomize "$KBASE" >"$W/rendered.yaml" || die "kubectl kustomize $KBASE"
node deploy/validate/ingress-nginx.mjs --render "$W/rendered.yaml" --host "$HOST" \
  --upstream "astronomer-houston-auth=127.0.0.1:$SP" --upstream "astronomer-houston=127.0.0.1:$HP" \
  >"$W/locations.conf" || die "rendering the Ingress of $KBASE"
mkdir -p "$W/tmp"
sed -e "s|@DIR@|$W|g" -e "s|@HOST@|$HOST|g" -e "s|@PORT@|$NP|g" -e "s|@CERT@|$W/tenant/tls.pem|g" \
  -e "s|@KEY@|$W/tenant/tls.key|g" tests/edge/nginx.conf.in >"$W/nginx.conf"
if [ "$(id -u)" = 0 ]; then
  # As root nginx runs its workers as nobody: they need to reach their temp directories.
  sed -i '1i user nobody nogroup;' "$W/nginx.conf"
  chmod 711 "$W"
fi
nginx -t -q -e "$W/nginx-error.log" -p "$W" -c "$W/nginx.conf" || die "nginx -t: $(tail -3 "$W/nginx-error.log")"
nginx -e "$W/nginx-error.log" -p "$W" -c "$W/nginx.conf" || die "nginx did not start"
echo "edge: nginx on $PUBLIC, locations from $KBASE:"
grep -E '^ *location ' "$W/locations.conf" | sed 's/^ */  /'
wait_http "$PUBLIC/v1/healthz" 200 "nginx in front of Houston"

# ---- the forged token ----
b64url() { openssl base64 -A | tr '+/' '-_' | tr -d '='; }
NOW=$(date +%s)
KID=$("${CURL[@]}" "https://localhost:$TP/.well-known/jwks.json" |
  node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).keys[0].kid))')
[ -n "$KID" ] || die "no kid in the tenant's JWKS"
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$W/evil.pem" 2>/dev/null
forge() { # kid iss aud exp email -> a JWS signed with evil.pem
  local h p s
  h=$(printf '{"alg":"RS256","typ":"JWT","kid":"%s"}' "$1" | b64url)
  p=$(printf '{"iss":"%s","sub":"auth0|forged","aud":"%s","exp":%s,"iat":%s,"email":"%s","email_verified":true}' \
    "$2" "$3" "$4" "$NOW" "$5" | b64url)
  s=$(printf '%s.%s' "$h" "$p" | openssl dgst -sha256 -sign "$W/evil.pem" -binary | b64url)
  echo "$h.$p.$s"
}
form() { # id_token -> Houston's callback form
  local state
  state=$(node -e 'process.stdout.write(encodeURIComponent(process.argv[1]))' \
    "{\"provider\":\"auth0\",\"integration\":\"self\",\"origin\":\"$PUBLIC/v1/oauth/callback\",\"redirect\":\"/oauth\"}")
  echo "id_token=$1&access_token=forged&token_type=Bearer&expires_in=86400&state=$state"
}
ISS=https://localhost:$TP/
form "$(forge "$KID" "$ISS" "$CLIENT" $((NOW + 600)) "$VICTIM")" >"$W/forged.form"

post() { # origin raw-target form-file -> status; headers in $W/h, body in $W/b
  "${CURL[@]}" --path-as-is --request-target "$2" -X POST \
    -H 'Content-Type: application/x-www-form-urlencoded' --data-binary "@$3" \
    -D "$W/h" -o "$W/b" -w '%{http_code}' "$1/" 2>/dev/null || echo 000
}
session() { grep -qi "^set-cookie: $COOKIE=" "$W/h"; }
received() {
  curl -sS --max-time 10 "http://127.0.0.1:$HP/__test/received" |
    node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).length))'
}
reset_houston() { curl -sS --max-time 10 -o /dev/null -X POST "http://127.0.0.1:$HP/__test/reset"; }

echo "== 1. the forged callback through nginx, $((${#SPELLINGS[@]} + ${#NGINX_REFUSES[@]})) spellings"
reset_houston
for entry in "${SPELLINGS[@]}"; do
  target=${entry#* }
  st=$(post "$PUBLIC" "$target" "$W/forged.form")
  if [ "$st" = 403 ] && grep -q "$REFUSED_MARK" "$W/b" && ! session; then
    ok "$target: 403 from the sidecar, no session"
  else
    bad "$target: $st$(session && echo ', a Houston session') (want the sidecar's 403)"
  fi
done
for target in "${NGINX_REFUSES[@]}"; do
  st=$(post "$PUBLIC" "$target" "$W/forged.form")
  if [ "$st" = 400 ] && ! session; then ok "$target: 400 from nginx"; else bad "$target: $st"; fi
done
n=$(received)
if [ "$n" = 0 ]; then ok "Houston received no callback"; else bad "Houston received $n callbacks through nginx"; fi

echo "== 2. controls, straight to the stand-in (no nginx)"
reset_houston
st=$(post "http://127.0.0.1:$HP" /v1/oauth/callback "$W/forged.form")
if [ "$st" = 302 ] && session && grep -qi "^location: $APP/oauth?.*token=" "$W/h"; then
  ok "the forged token gets a session from Houston 0.9 (the stand-in is that weak)"
else
  bad "the forged token got $st and no session straight from the stand-in: the test proves nothing"
fi
for entry in "${SPELLINGS[@]}"; do
  want=${entry%% *}
  target=${entry#* }
  st=$(post "http://127.0.0.1:$HP" "$target" "$W/forged.form")
  if [ "$want" = y ] && session; then
    ok "$target: Express routes it to the callback (session)"
  elif [ "$want" = n ] && ! session && [ "$st" = 404 ]; then
    ok "$target: Express does not route it (404)"
  else
    bad "$target: the stand-in answered $st$(session && echo ' with a session'), Express would $([ "$want" = y ] || echo 'not ')route it"
  fi
done
for c in "unknown kid|no-such-kid|$ISS|$CLIENT|$((NOW + 600))" \
  "another iss|$KID|https://evil.example.net/|$CLIENT|$((NOW + 600))" \
  "another aud|$KID|$ISS|other-client|$((NOW + 600))" \
  "expired|$KID|$ISS|$CLIENT|$((NOW - 60))"; do
  IFS='|' read -r what kid iss aud exp <<<"$c"
  form "$(forge "$kid" "$iss" "$aud" "$exp" "$VICTIM")" >"$W/check.form"
  st=$(post "http://127.0.0.1:$HP" /v1/oauth/callback "$W/check.form")
  if [ "$st" = 302 ] && ! session && grep -qi "^location: $APP/login?error=" "$W/h"; then
    ok "$what: refused by the stand-in as by Houston 0.9"
  else
    bad "$what: the stand-in answered $st$(session && echo ' with a session')"
  fi
done

echo "== 3. a real login through nginx; what nginx does not pass to the sidecar"
reset_houston
jar=$W/jar
st=$("${CURL[@]}" -c "$jar" -b "$jar" -D "$W/h" -o /dev/null -w '%{http_code}' \
  "$PUBLIC/v1/oauth/start?provider=auth0&integration=self&redirect=/oauth&login_hint=alice@example.com")
loc=$(sed -n 's/^[Ll]ocation: *//p' "$W/h" | tr -d '\r')
if [ "$st" = 302 ] && [[ $loc == "https://localhost:$TP/authorize?"* ]]; then
  loc=$("${CURL[@]}" -D - -o /dev/null "$loc" | sed -n 's/^[Ll]ocation: *//p' | tr -d '\r')
  st=$("${CURL[@]}" -c "$jar" -b "$jar" -D "$W/h" -o /dev/null -w '%{http_code}' "$loc")
  if [[ $loc == "$PUBLIC/v1/oauth/redirect?"* ]] && [ "$st" = 302 ] && session &&
    grep -qi "^location: $APP/oauth?.*token=" "$W/h" && [ "$(received)" = 1 ]; then
    ok "start, authorize, redirect through nginx: Houston's cookie, one hand-off to Houston"
  else
    bad "the login's redirect ended $st at $(sed -n 's/^[Ll]ocation: *//p' "$W/h" | cut -c1-80)"
  fi
else
  bad "start through nginx answered $st $loc"
fi
for p in /healthz /readyz /metrics; do
  st=$("${CURL[@]}" -o "$W/b" -w '%{http_code}' "$PUBLIC$p")
  if [ "$st" != 200 ] && ! grep -q -e houston_auth_ -e '"status"' "$W/b"; then
    ok "$p through nginx: $st, not the sidecar's"
  else
    bad "$p through nginx answered $st: $(head -c 80 "$W/b")"
  fi
done
st=$("${CURL[@]}" -D "$W/h" -o /dev/null -w '%{http_code}' "$PUBLIC/logout")
if [ "$st" = 302 ] && grep -qi "^location: https://localhost:$TP/v2/logout?" "$W/h"; then
  ok "/logout through nginx: the sidecar's logout"
else
  bad "/logout through nginx answered $st"
fi
if grep -q '"houston_path_refused"' "$W/sidecar.log" && ! grep -q "$VICTIM\|id_token=" "$W/sidecar.log"; then
  ok "the sidecar logged the refusals, without the token or the email"
else
  bad "the sidecar's log: no refusal line, or it holds the forged token or email"
fi

# SIGTERM: each process ends with status 0 and no sanitizer report (an ASan build's logs).
names=(dev-tenant houston-standin houston-auth)
logs=(tenant.log houston.log sidecar.log)
for i in 0 1 2; do
  stop "${pids[$i]}"
  rc=0
  wait "${pids[$i]}" || rc=$?
  if [ "$rc" = 0 ] && ! grep -q -e 'Sanitizer' -e 'runtime error:' "$W/${logs[$i]}"; then
    ok "${names[$i]} stopped cleanly"
  else
    bad "${names[$i]} ended with status $rc or a sanitizer report (${logs[$i]})"
  fi
done
pids=()

echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
