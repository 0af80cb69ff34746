#!/usr/bin/env bash
# Smoke test of the development peers (tools/dev-tenant, tools/houston-standin) on their own,
# with curl and openssl only: discovery, JWKS, authorize with login_hint, the PKCE code
# exchange (ID token signature checked with openssl against the tenant's key file), code
# replay refused, the callback to the stand-in and what it recorded, the cookie name for a
# base domain with digits, test controls off, logout, and a clean stop on SIGTERM.
#
#   tests/integration/peers_smoke.sh [BUILD_DIR]     (default: build; or $HA_BIN_DIR)
# Exits 0 when every check passes, 1 otherwise (and prints the peers' logs).
set -uo pipefail

BUILD=${1:-${HA_BIN_DIR:-build}}
TENANT_BIN=$BUILD/tools/dev-tenant
STANDIN_BIN=$BUILD/tools/houston-standin
for b in "$TENANT_BIN" "$STANDIN_BIN"; do
  [ -x "$b" ] || { echo "peers_smoke: $b not built (cmake --build $BUILD)" >&2; exit 1; }
done

WORK=$(mktemp -d "${TMPDIR:-/tmp}/peers-smoke.XXXXXX")
CLIENT=houston-auth-dev
SECRET=smoke-secret-$$
BASE=astro.example.com
APP=https://app.$BASE
CB=https://houston.$BASE/v1/oauth/redirect
pids=()
fails=0
passes=0

cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

ok() { passes=$((passes + 1)); echo "ok   $1"; }
bad() { fails=$((fails + 1)); echo "FAIL $1${2:+ ($2)}"; }
# check DESCRIPTION COMMAND...: passes when the command succeeds.
check() { local d=$1; shift; if "$@"; then ok "$d"; else bad "$d"; fi; }
has() { grep -q -- "$2" <<<"$1"; }
eq() { [ "$1" = "$2" ] || { echo "     got '$1', want '$2'"; return 1; }; }
quiet() { "$@" >/dev/null 2>&1; }

# Starts a peer with stdout in $WORK/NAME.out, waits for its ready line; sets READY.
start() {
  local name=$1; shift
  "$@" >"$WORK/$name.out" 2>"$WORK/$name.log" &
  pids+=($!)
  for _ in $(seq 1 200); do
    READY=$(grep -m1 ': ready ' "$WORK/$name.out" 2>/dev/null) && return 0
    kill -0 "${pids[-1]}" 2>/dev/null || break
    sleep 0.05
  done
  echo "peers_smoke: $name did not start"; cat "$WORK/$name.log"; exit 1
}

b64url_decode() { # stdin: base64url text -> stdout: bytes
  local s; s=$(tr -- '-_' '+/'); while [ $(( ${#s} % 4 )) -ne 0 ]; do s="$s="; done
  printf '%s' "$s" | openssl base64 -d -A
}
json_str() { # json_str KEY JSON -> the string value of the first "KEY":"..."
  grep -o "\"$1\":\"[^\"]*\"" <<<"$2" | head -1 | sed 's/^"[^"]*":"//; s/"$//'
}

# ---- start both peers on free ports (port 0; the ready lines say which) ----
start tenant "$TENANT_BIN" --listen 127.0.0.1:0 --state-dir "$WORK/state" --client-id "$CLIENT" \
  --client-secret "$SECRET" --callback "$CB" --logout-url "$APP/logout" \
  --audience astronomer-ee --san "houston.$BASE" --san "app.$BASE" --test-controls
ISSUER=$(sed -n 's/^dev-tenant: ready \(https:[^ ]*\) .*/\1/p' <<<"$READY")
T=${ISSUER%/}
CURL=(curl -sS --max-time 10 --cacert "$WORK/state/ca.pem")
start standin "$STANDIN_BIN" --listen 127.0.0.1:0 --base-domain "$BASE" --app-url "$APP" \
  --test-controls
H=$(sed -n 's/^houston-standin: ready \(http:[^ ]*\)$/\1/p' <<<"$READY")
echo "tenant $ISSUER, stand-in $H"

check "state dir holds ca.pem, tls.pem, tls.key, signing-1.pem" \
  test -s "$WORK/state/ca.pem" -a -s "$WORK/state/tls.pem" -a -s "$WORK/state/tls.key" \
  -a -s "$WORK/state/signing-1.pem"
check "private keys are 0600" eq "$(stat -c %a "$WORK/state/signing-1.pem" "$WORK/state/tls.key" | sort -u)" 600
check "TLS leaf verifies against ca.pem" quiet openssl verify -CAfile "$WORK/state/ca.pem" -purpose sslserver "$WORK/state/tls.pem"

# ---- discovery and JWKS ----
disc=$("${CURL[@]}" "$T/.well-known/openid-configuration")
check "discovery issuer is the ready line's issuer" eq "$(json_str issuer "$disc")" "$ISSUER"
check "discovery token_endpoint" eq "$(json_str token_endpoint "$disc")" "${ISSUER}oauth/token"
check "discovery jwks_uri" eq "$(json_str jwks_uri "$disc")" "${ISSUER}.well-known/jwks.json"
check "discovery end_session_endpoint" eq "$(json_str end_session_endpoint "$disc")" "${ISSUER}v2/logout"
check "discovery offers PKCE S256 only" has "$disc" '"code_challenge_methods_supported":\["S256"\]'
check "discovery offers RS256 only" has "$disc" '"id_token_signing_alg_values_supported":\["RS256"\]'
jwks=$("${CURL[@]}" "$T/.well-known/jwks.json")
KID=$(json_str kid "$jwks")
check "JWKS has an RSA sig key with a kid" has "$jwks" '"kty":"RSA","use":"sig","alg":"RS256"'
check "kid is a 43-char thumbprint" eq "${#KID}" 43

# ---- authorize with login_hint (auto-approve) ----
VERIFIER=$(openssl rand -base64 48 | tr '+/' '-_' | tr -d '=\n' | cut -c1-64)
CHALLENGE=$(printf '%s' "$VERIFIER" | openssl dgst -sha256 -binary | openssl base64 -A | tr '+/' '-_' | tr -d '=')
authorize() { # authorize [extra curl args] -> prints "status location"
  "${CURL[@]}" -o /dev/null -w '%{http_code} %{redirect_url}' -G "$T/authorize" \
    --data-urlencode "client_id=$CLIENT" --data-urlencode "redirect_uri=$CB" \
    --data-urlencode response_type=code --data-urlencode "scope=openid profile email" \
    --data-urlencode state=smoke-state --data-urlencode nonce=smoke-nonce \
    --data-urlencode "code_challenge=$CHALLENGE" --data-urlencode code_challenge_method=S256 \
    --data-urlencode audience=astronomer-ee "$@"
}
ans=$(authorize --data-urlencode login_hint=dev@example.com)
check "authorize with login_hint redirects to the callback" has "$ans" "^302 $CB?code="
check "authorize passes the state through" has "$ans" '&state=smoke-state$'
CODE=$(sed -n 's/.*[?&]code=\([^&]*\).*/\1/p' <<<"$ans")
ans=$(authorize --data-urlencode login_hint=dev@example.com --data-urlencode redirect_uri=https://evil.example/cb)
check "a repeated redirect_uri is a 400 page, not a redirect" eq "$ans" "400 "
ans=$("${CURL[@]}" -o /dev/null -w '%{http_code} %{redirect_url}' -G "$T/authorize" \
  --data-urlencode "client_id=$CLIENT" --data-urlencode "redirect_uri=https://evil.example/cb")
check "an unregistered redirect_uri is a 400 page, not a redirect" eq "$ans" "400 "
ans=$(authorize --data-urlencode code_challenge_method=plain)
check "PKCE other than S256 is invalid_request" has "$ans" "^302 $CB?error=invalid_request"
ans=$(authorize)
check "without login_hint the login page shows" eq "$ans" "200 "

# ---- the token exchange ----
token() { "${CURL[@]}" -w '\n%{http_code}' "$T/oauth/token" "$@"; }
resp=$(token -u "$CLIENT:$SECRET" -d grant_type=authorization_code --data-urlencode "code=$CODE" \
  --data-urlencode "redirect_uri=$CB" --data-urlencode "code_verifier=$VERIFIER")
body=${resp%$'\n'*}
check "token exchange (client_secret_basic, PKCE) answers 200" eq "${resp##*$'\n'}" 200
check "token response is Bearer, 86400 s" has "$body" '"token_type":"Bearer","expires_in":86400'
ID_TOKEN=$(json_str id_token "$body")
ACCESS_TOKEN=$(json_str access_token "$body")
openssl pkey -in "$WORK/state/signing-1.pem" -pubout -out "$WORK/pub.pem" 2>/dev/null
printf '%s' "${ID_TOKEN%.*}" >"$WORK/signed"
printf '%s' "${ID_TOKEN##*.}" | b64url_decode >"$WORK/sig"
check "ID token RS256 signature verifies with signing-1.pem" \
  quiet openssl dgst -sha256 -verify "$WORK/pub.pem" -signature "$WORK/sig" "$WORK/signed"
header=$(printf '%s' "${ID_TOKEN%%.*}" | b64url_decode)
claims=$(printf '%s' "${ID_TOKEN#*.}" | cut -d. -f1 | b64url_decode)
check "ID token header names RS256 and the JWKS kid" eq "$(json_str alg "$header") $(json_str kid "$header")" "RS256 $KID"
check "ID token iss, aud, azp, nonce, email" eq \
  "$(json_str iss "$claims") $(json_str aud "$claims") $(json_str azp "$claims") $(json_str nonce "$claims") $(json_str email "$claims")" \
  "$ISSUER $CLIENT $CLIENT smoke-nonce dev@example.com"
check "ID token sub is auth0| + sha256(email)[:24]" eq "$(json_str sub "$claims")" \
  "auth0|$(printf '%s' dev@example.com | sha256sum | cut -c1-24)"
atc=$(printf '%s' "${ACCESS_TOKEN#*.}" | cut -d. -f1 | b64url_decode)
check "access token aud is [astronomer-ee, userinfo]" has "$atc" "\"aud\":\[\"astronomer-ee\",\"${ISSUER}userinfo\"\]"
ui=$("${CURL[@]}" -H "Authorization: Bearer $ACCESS_TOKEN" "$T/userinfo")
check "userinfo answers the email for the access token" eq "$(json_str email "$ui")" dev@example.com

resp=$(token -u "$CLIENT:$SECRET" -d grant_type=authorization_code --data-urlencode "code=$CODE" \
  --data-urlencode "redirect_uri=$CB" --data-urlencode "code_verifier=$VERIFIER")
check "a replayed code is refused: 400 invalid_grant" eq "$(json_str error "${resp%$'\n'*}") ${resp##*$'\n'}" "invalid_grant 400"
CODE2=$(authorize --data-urlencode login_hint=dev@example.com | sed -n 's/.*[?&]code=\([^&]*\).*/\1/p')
resp=$(token -u "$CLIENT:$SECRET" -d grant_type=authorization_code --data-urlencode "code=$CODE2" \
  --data-urlencode "redirect_uri=$CB" --data-urlencode "code_verifier=${VERIFIER}x")
check "a wrong code_verifier is invalid_grant" eq "$(json_str error "${resp%$'\n'*}")" invalid_grant
CODE3=$(authorize --data-urlencode login_hint=dev@example.com | sed -n 's/.*[?&]code=\([^&]*\).*/\1/p')
resp=$(token -u "$CLIENT:$SECRET" -d "client_secret=$SECRET" -d grant_type=authorization_code \
  --data-urlencode "code=$CODE3" --data-urlencode "redirect_uri=$CB" --data-urlencode "code_verifier=$VERIFIER")
check "two client auth methods at once: 401 invalid_client" eq "$(json_str error "${resp%$'\n'*}") ${resp##*$'\n'}" "invalid_client 401"
resp=$(token -d "client_id=$CLIENT" -d "client_secret=$SECRET" -d grant_type=authorization_code \
  --data-urlencode "code=$CODE3" --data-urlencode "redirect_uri=$CB" --data-urlencode "code_verifier=$VERIFIER")
check "client_secret_post works" eq "${resp##*$'\n'}" 200

# ---- the callback to the Houston stand-in ----
STATE='{"provider":"auth0","integration":"self","origin":"https://houston.'$BASE'/v1/oauth/callback","redirect":"/oauth","extras":{"k":"v"}}'
callback() { # callback HOUSTON_URL [curl args]; headers in $WORK/cb.h
  local url=$1; shift
  curl -sS --max-time 10 -o /dev/null -D "$WORK/cb.h" -w '%{http_code}' "$url/v1/oauth/callback" "$@"
}
st=$(callback "$H" --data-urlencode "id_token=$ID_TOKEN" --data-urlencode "access_token=$ACCESS_TOKEN" \
  -d token_type=Bearer -d expires_in=86400 --data-urlencode "state=$STATE")
hdr=$(tr -d '\r' <"$WORK/cb.h")
check "callback answers 302" eq "$st" 302
check "callback Location is the app's redirect with extras, strategy, token" \
  has "$hdr" "^Location: $APP/oauth?extras=%7B%22k%22%3A%22v%22%7D&strategy=auth0&token=ey"
check "callback sets Houston's cookie for .$BASE" \
  has "$hdr" "^Set-Cookie: astronomer_astro_example_com_auth=ey[^;]*; Domain=.$BASE; Path=/; Secure$"
st=$(callback "$H" -d token_type=Bearer -d expires_in=86400)
hdr=$(tr -d '\r' <"$WORK/cb.h")
check "an incomplete callback goes to /login?error=invalid_callback" has "$hdr" "^Location: $APP/login?error=invalid_callback$"
check "an incomplete callback sets no cookie" eval '! grep -qi "^Set-Cookie" <<<"$hdr"'
rec=$(curl -sS --max-time 10 "$H/__test/received")
check "the stand-in recorded both callbacks" eq "$(grep -o '"cookie_name"' <<<"$rec" | wc -l)" 2
check "the record has the email and the parsed state" has "$rec" '"state":{"provider":"auth0","integration":"self"'
check "the record names the email" eq "$(json_str email "$rec")" dev@example.com
check "the refused callback is recorded as invalid_callback" has "$rec" '"error":"invalid_callback"'

# ---- faults and stats ----
check "a tenant fault is accepted" eq "$("${CURL[@]}" -o /dev/null -w '%{http_code}' "$T/__test/fault" -d '{"token_status":503}')" 200
resp=$(token -u "$CLIENT:$SECRET" -d grant_type=authorization_code -d code=x)
check "token_status fault answers 503 server_error" eq "$(json_str error "${resp%$'\n'*}") ${resp##*$'\n'}" "server_error 503"
check "an unknown fault is refused" eq "$("${CURL[@]}" -o /dev/null -w '%{http_code}' "$T/__test/fault" -d '{"nope":1}')" 400
stats=$("${CURL[@]}" "$T/__test/stats")
check "stats count token requests" has "$stats" '"token_requests":6'
"${CURL[@]}" -o /dev/null -X POST "$T/__test/reset"
check "reset clears the counters" has "$("${CURL[@]}" "$T/__test/stats")" '"token_requests":0'
kid2=$("${CURL[@]}" -X POST "$T/__test/rotate-key")
check "rotate-key answers a new kid" eval '[ -n "$(json_str kid "$kid2")" ] && [ "$(json_str kid "$kid2")" != "$KID" ]'
check "rotate-key publishes a second key" eq "$("${CURL[@]}" "$T/.well-known/jwks.json" | grep -o '"kid"' | wc -l)" 2

# ---- logout ----
lo=$("${CURL[@]}" -o /dev/null -w '%{http_code} %{redirect_url}' -G "$T/v2/logout" \
  --data-urlencode "client_id=$CLIENT" --data-urlencode "returnTo=$APP/logout")
check "logout to an allowed returnTo redirects" eq "$lo" "302 $APP/logout"
lo=$("${CURL[@]}" -o /dev/null -w '%{http_code} %{redirect_url}' -G "$T/v2/logout" \
  --data-urlencode "client_id=$CLIENT" --data-urlencode "returnTo=https://evil.example/")
check "logout to another returnTo is a 400 page" eq "$lo" "400 "

# ---- a second stand-in: digits in the base domain, test controls off ----
start standin2 "$STANDIN_BIN" --listen 127.0.0.1:0 --base-domain k8s.example.com \
  --app-url https://app.k8s.example.com
H2=$(sed -n 's/^houston-standin: ready \(http:[^ ]*\)$/\1/p' <<<"$READY")
st=$(callback "$H2" --data-urlencode "id_token=$ID_TOKEN" --data-urlencode "access_token=$ACCESS_TOKEN" \
  -d token_type=Bearer -d expires_in=86400 --data-urlencode "state=$STATE")
check "the second stand-in answers 302" eq "$st" 302
check "k8s.example.com gives astronomer_k_8_s_example_com_auth" \
  grep -q '^Set-Cookie: astronomer_k_8_s_example_com_auth=' "$WORK/cb.h"
check "without --test-controls /__test/received is 404" \
  eq "$(curl -sS -o /dev/null -w '%{http_code}' "$H2/__test/received")" 404

# ---- a clean stop ----
for i in "${!pids[@]}"; do
  kill -TERM "${pids[$i]}"
  wait "${pids[$i]}"
  rc=$?
  check "peer ${pids[$i]} stops cleanly on SIGTERM" eq "$rc" 0
done
pids=()

echo "peers_smoke: $passes passed, $fails failed"
if [ "$fails" -ne 0 ]; then
  for f in "$WORK"/*.log; do echo "---- $f"; tail -20 "$f"; done
  exit 1
fi
exit 0
