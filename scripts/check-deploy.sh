#!/usr/bin/env bash
# Checks deploy/ offline: renders it with `kubectl kustomize` from Debian 12's
# kubernetes-client (kustomize v2.0.3), and also with a newer kubectl when one is on PATH;
# runs deploy/helm/post-render.sh as Helm would, for the default release and a renamed one;
# validates every object against the Kubernetes schemas and checks that the sidecar's port,
# probe paths, login paths, environment names, Secret keys and ConfigMap key agree with what
# the binary reads (deploy/validate/validate.mjs, facts taken from `houston-auth --help`,
# include/houston_auth/proto.h, src/main.c and the Dockerfile). Then the binary itself runs
# --check-config on exactly the files and environment the pod would get. The UI Ingresses'
# auth-url must reach the sidecar's Service on its port and Houston's path /v1/authorization in
# every render, the chart's other auth-url form (Houston's public URL) must give the same
# result, and the rollback switch must leave the chart's auth-urls alone. Finally a few
# deliberately broken copies of the base must be refused, so the checks are known to bite.
#
# Usage: scripts/check-deploy.sh     (root for the apt steps; needs node and npm)
# Env:   HA_BIN            the houston-auth binary (default build/houston-auth, built if missing)
#        HA_DEPLOY_CACHE   where Debian's kubectl is unpacked (default /var/cache/houston-auth-deploy)
set -euo pipefail
cd "$(dirname "$0")/.."

CACHE=${HA_DEPLOY_CACHE:-/var/cache/houston-auth-deploy}
BIN=${HA_BIN:-build/houston-auth}
VALIDATE=deploy/validate
T0=$(date +%s)

say() { echo "check-deploy.sh [$(($(date +%s) - T0))s] $*"; }
fail() {
  echo "check-deploy.sh: FAILED: $*" >&2
  exit 1
}

# Debian's kubectl 1.20 (scripts/kubectl.sh unpacks it into the cache when needed).
debian_kubectl() {
  HA_DEPLOY_CACHE=$CACHE scripts/kubectl.sh || fail "apt-get download kubernetes-client"
}

# Any other kubectl on PATH with kustomize v4 or later, to render with a current kustomize.
newer_kubectl() {
  local k
  for k in $(type -ap kubectl); do
    if KUBECONFIG=/dev/null "$k" version --client 2>/dev/null | grep -Eq 'Kustomize Version: v([4-9]|[1-9][0-9])'; then
      echo "$k"
      return
    fi
  done
}

ensure_tools() {
  if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
  fi
  if [ ! -d "$VALIDATE/node_modules" ] || [ "$VALIDATE/package-lock.json" -nt "$VALIDATE/node_modules" ]; then
    (cd "$VALIDATE" && npm ci --no-audit --no-fund --loglevel=error >/dev/null) || fail "npm ci in $VALIDATE"
    touch "$VALIDATE/node_modules"
  fi
  if [ ! -x "$BIN" ]; then
    scripts/deps.sh build
    [ -f build/CMakeCache.txt ] ||
      cmake -S . -B build -DHA_WERROR=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
    cmake --build build -j"$(nproc 2>/dev/null || echo 2)" --target houston-auth >/dev/null
  fi
}

proto_path() { # HA_PATH_X -> its string from proto.h
  sed -n "s/^#define $1 \"\\(.*\\)\"$/\\1/p" include/houston_auth/proto.h
}

json_list() { # words -> ["a","b"]
  local out="" w
  for w in "$@"; do out+="${out:+,}\"$w\""; done
  echo "[$out]"
}

# What the binary reads, from its own --help and the sources, never retyped here.
write_facts() {
  local help listen port uid drain env_names=() secrets=() required=() config_env n
  help=$("$BIN" --help)
  grep -q -- '--probe URL' <<<"$help" || fail "houston-auth --help has no --probe"
  for n in $(grep -oE '\b[A-Z][A-Z0-9]*_[A-Z0-9_]*[A-Z0-9](\[_FILE\])?' <<<"$help" | sort -u); do
    if [[ $n == *"[_FILE]" ]]; then
      env_names+=("${n%\[_FILE\]}" "${n%\[_FILE\]}_FILE")
    else
      env_names+=("$n")
    fi
  done
  mapfile -t secrets < <(awk '/\(secret\)/ { sub(/\[_FILE\]/, "", $3); print $3 }' <<<"$help")
  mapfile -t required < <(awk '/\(secret\)/ && /\(required\)/ { sub(/\[_FILE\]/, "", $3); print $3 }' <<<"$help")
  config_env=$(grep -oE 'or env [A-Z_]+' <<<"$help" | head -1 | awk '{ print $3 }')
  listen=$(awk '$1 == "authSidecar.listen" { print $4 }' <<<"$help")
  port=${listen##*:}
  uid=$(sed -n 's/^USER \([0-9]*\):[0-9]*$/\1/p' Dockerfile)
  drain=$(sed -n 's/^#define DRAIN_MS \([0-9]*\)$/\1/p' src/main.c)
  [ ${#secrets[@]} -ge 2 ] && [ ${#required[@]} -ge 2 ] && [ -n "$config_env" ] && [ -n "$port" ] &&
    [ -n "$uid" ] && [ -n "$drain" ] || fail "could not read the facts from --help, Dockerfile, main.c"
  grep -q "^  CMD \[\"/houston-auth\", \"--probe\", \"http://127.0.0.1:$port$(proto_path HA_PATH_HEALTHZ)\"\]" Dockerfile ||
    fail "the Dockerfile's HEALTHCHECK does not probe $(proto_path HA_PATH_HEALTHZ) on $port"
  grep -q "^EXPOSE $port$" Dockerfile || fail "the Dockerfile does not EXPOSE $port"
  cat >"$1" <<JSON
{"container":"houston-auth","port":$port,"defaultListen":"$listen","uid":$uid,"drainMs":$drain,
 "configEnv":"$config_env","envNames":$(json_list "${env_names[@]}"),
 "secretEnvs":$(json_list "${secrets[@]}"),"requiredSecrets":$(json_list "${required[@]}"),
 "paths":{"healthz":"$(proto_path HA_PATH_HEALTHZ)","readyz":"$(proto_path HA_PATH_READYZ)",
          "metrics":"$(proto_path HA_PATH_METRICS)","start":"$(proto_path HA_PATH_START)",
          "redirect":"$(proto_path HA_PATH_REDIRECT)","logout":"$(proto_path HA_PATH_LOGOUT)"}}
JSON
  say "facts: port $port, uid $uid, drain ${drain} ms, ${#env_names[@]} env names, config via $config_env"
}

# The Secret and ConfigMap made exactly as docs/deployment.md tells the operator to.
write_extras() {
  local cfg=$W/config.yaml
  sed -e 's|<default-app-client-id>|houston-auth-deploy-check|' \
    -e 's|<tenant-name>.auth0.com|example-tenant.us.auth0.com|' examples/config.yaml >"$cfg"
  CLIENT_SECRET=$(openssl rand -hex 24)
  COOKIE_SECRET=$(openssl rand -base64 48)
  PREVIOUS_SECRET=$(openssl rand -base64 48)
  # With the optional key of a cookie-secret rotation, so that path is checked too.
  KUBECONFIG=/dev/null "$K" create secret generic houston-auth \
    --from-literal=auth0-client-secret="$CLIENT_SECRET" --from-literal=cookie-secret="$COOKIE_SECRET" \
    --from-literal=cookie-secret-previous="$PREVIOUS_SECRET" --dry-run=client -o yaml >"$W/secret.yaml"
  KUBECONFIG=/dev/null "$K" create configmap houston-auth-config --from-file=config.yaml="$cfg" \
    --dry-run=client -o yaml >"$W/configmap.yaml"
}

render_all() {
  "$K" kustomize deploy/base >"$W/base-debian.yaml" || fail "kubectl 1.20 kustomize deploy/base"
  RENDERS=(--render "kubectl-1.20=$W/base-debian.yaml")
  KUBECTL=$K deploy/helm/post-render.sh <deploy/base/astronomer-chart.yaml >"$W/post-render.yaml" ||
    fail "deploy/helm/post-render.sh"
  RENDERS+=(--render "post-render.sh=$W/post-render.yaml")
  if [ -n "$KNEW" ]; then
    "$KNEW" kustomize deploy/base >"$W/base-new.yaml" 2>"$W/knew.log" ||
      fail "$KNEW kustomize deploy/base: $(cat "$W/knew.log")"
    RENDERS+=(--render "kubectl-new=$W/base-new.yaml")
  fi
  # As Helm would run it for a release named "prod" in namespace "platform" (the stand-in
  # renamed like the chart would).
  sed -e 's/astronomer-\(houston\|grafana\|kibana\)/prod-\1/g' -e 's/release: astronomer$/release: prod/' \
    -e 's/\.astronomer\.svc\./.platform.svc./' deploy/base/astronomer-chart.yaml |
    HOUSTON_AUTH_RELEASE=prod HOUSTON_AUTH_IMAGE=registry.example.com:5000/ops/houston-auth:1.2.3 \
      KUBECTL=$K deploy/helm/post-render.sh >"$W/post-render-prod.yaml" || fail "post-render.sh as release prod"
  grep -q 'image: registry.example.com:5000/ops/houston-auth:1.2.3$' "$W/post-render-prod.yaml" ||
    fail "post-render.sh did not set HOUSTON_AUTH_IMAGE"
  if grep -Eq 'astronomer-houston|release: astronomer$' "$W/post-render-prod.yaml"; then
    fail "post-render.sh left names of release astronomer in release prod"
  fi
  [ "$(grep -c 'auth-url: http://prod-houston-auth\.platform\.svc\.' "$W/post-render-prod.yaml")" = \
    "$(grep -c 'auth-url:' deploy/base/astronomer-chart.yaml)" ] ||
    fail "post-render.sh did not keep the chart's namespace in release prod's auth-urls"
}

annotation_lines() { # NAME FILE -> that annotation's lines, sorted
  grep -o "nginx\.ingress\.kubernetes\.io/$1: .*" "$2" | sort
}

# post-render.sh's auth-url rewrite beyond the renders validate.mjs checks: Houston's public
# URL (charts before 1.0), another release's Houston, the rollback, and what must not change.
check_auth_url_forms() {
  local chart=deploy/base/astronomer-chart.yaml a n internal public
  internal='http://astronomer-houston.astronomer.svc.cluster.local:8871/v1/authorization'
  public='https://houston.astro.example.com/v1/authorization'
  n=$(grep -c "auth-url: $internal$" "$chart")
  if [ "$n" -lt 1 ] || [ "$n" != "$(grep -c 'auth-url:' "$chart")" ]; then
    fail "the stand-in's auth-urls are not all the chart's in-cluster Houston URL"
  fi
  for a in auth-signin auth-response-headers; do
    cmp -s <(annotation_lines "$a" "$chart") <(annotation_lines "$a" "$W/post-render.yaml") ||
      fail "post-render.sh changed the chart's $a"
  done
  sed "s|auth-url: $internal$|auth-url: \"$public\"|" "$chart" >"$W/chart-public.yaml"
  HOUSTON_AUTH_NAMESPACE=astronomer KUBECTL=$K deploy/helm/post-render.sh <"$W/chart-public.yaml" \
    >"$W/post-render-public.yaml" || fail "post-render.sh on Houston's public auth-url"
  cmp -s "$W/post-render.yaml" "$W/post-render-public.yaml" ||
    fail "post-render.sh: Houston's public auth-url gave another render than the in-cluster one"
  if KUBECTL=$K deploy/helm/post-render.sh <"$W/chart-public.yaml" >/dev/null 2>&1; then
    fail "post-render.sh guessed a namespace for Houston's public auth-url"
  fi
  if sed 's|//astronomer-houston\.|//other-houston.|' "$chart" |
    KUBECTL=$K deploy/helm/post-render.sh >/dev/null 2>&1; then
    fail "post-render.sh let through an auth-url to another release's Houston"
  fi
  HOUSTON_AUTH_AUTHZ_GATE=houston KUBECTL=$K deploy/helm/post-render.sh <"$chart" \
    >"$W/post-render-houston.yaml" || fail "post-render.sh with HOUSTON_AUTH_AUTHZ_GATE=houston"
  cmp -s <(annotation_lines auth-url "$chart") <(annotation_lines auth-url "$W/post-render-houston.yaml") ||
    fail "HOUSTON_AUTH_AUTHZ_GATE=houston did not leave the chart's auth-urls on Houston"
  say "auth-url: $n UI Ingresses to the sidecar, from either chart form (public one with" \
    "HOUSTON_AUTH_NAMESPACE); auth-signin and auth-response-headers kept; rollback leaves Houston's"
}

validate() { # extra validate.mjs args...
  node "$VALIDATE/validate.mjs" --facts "$W/facts.json" --extra "$W/secret.yaml" \
    --extra "$W/configmap.yaml" "$@"
}

# The binary, given the files and environment validate.mjs says the pod would see.
check_config_as_pod() {
  local out env=()
  mapfile -t env <"$W/pod.env"
  out=$(env -i "${env[@]}" "$BIN" --check-config 2>&1) || fail "--check-config with the pod's files: $out"
  grep -q '^configuration OK$' <<<"$out" || fail "--check-config: $out"
  if grep -qF -e "$CLIENT_SECRET" -e "$COOKIE_SECRET" -e "$PREVIOUS_SECRET" <<<"$out"; then
    fail "--check-config printed a secret"
  fi
  grep -q '^AUTH_SIDECAR_COOKIE_SECRET_PREVIOUS = (set' <<<"$out" ||
    fail "--check-config did not get the previous cookie secret from the pod's env"
  say "houston-auth --check-config OK with the pod's ConfigMap, Secret files and env (${#env[@]} variables)"
}

# Broken copies of the base must be refused: the checks above can fail.
check_mutations() {
  local m name expr reasons=()
  local -a cases=(
    "readiness path|s|path: /readyz|path: /ready|"
    "env name typo|s|name: AUTH_SIDECAR_COOKIE_SECRET_FILE|name: AUTH_SIDECAR_COOKIE_SECRETS_FILE|"
    "secret key|s|/var/run/secrets/houston-auth/cookie-secret|/var/run/secrets/houston-auth/cookie_secret|"
    "container port|s|containerPort: 8872|containerPort: 8873|"
    "read-only root|s|readOnlyRootFilesystem: true|readOnlyRootFilesystem: false|"
    "ingress regex off|s|nginx.ingress.kubernetes.io~1use-regex|nginx.ingress.kubernetes.io~1ssl-redirect|"
    "ingress oauth exact paths|s|path: /v1\\[^0-9a-z\\]\\*oauth|path: /v1/oauth/redirect|"
    "ingress oauth backslash|s|path: /v1\\[^0-9a-z\\]\\*oauth|path: /v1/oauth|"
    "ingress logout|s|path: /logout|path: /logout/|"
    "auth-url on Houston|s|houston-auth\\.astronomer\\.svc\\.cluster\\.local:8872|houston.astronomer.svc.cluster.local:8871|"
    "policy without the ingress controller|s|component: ingress-controller|component: cp-ingress-controller|"
  )
  for m in "${cases[@]}"; do
    name=${m%%|*}
    expr=${m#*|}
    rm -rf "$W/mut" && cp -r deploy/base "$W/mut"
    sed -i "$expr" "$W/mut"/houston-*.yaml
    cmp -s <(cat deploy/base/houston-*.yaml) <(cat "$W/mut"/houston-*.yaml) &&
      fail "mutation '$name' changed nothing"
    "$K" kustomize "$W/mut" >"$W/mut.yaml" 2>/dev/null || continue
    if validate --render "mutated=$W/mut.yaml" >/dev/null 2>"$W/mut.log"; then
      fail "a base with a broken $name passed validation"
    fi
    reasons+=("$name: $(grep -m1 '^validate: ' "$W/mut.log" | cut -c11-90)")
  done
  printf '  refused, %s\n' "${reasons[@]}"
  say "${#cases[@]} broken copies of the base refused"
}

W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
ensure_tools
K=$(debian_kubectl)
KUBECONFIG=/dev/null "$K" version --client 2>/dev/null | grep -q 'GitVersion:"v1.20' || fail "$K is not kubectl 1.20"
KNEW=$(newer_kubectl)
say "kubectl 1.20 (Debian kubernetes-client, kustomize v2.0.3): $K; newer: ${KNEW:-none on PATH}"
write_facts "$W/facts.json"
write_extras
render_all
validate "${RENDERS[@]}" --extract "$W/pod" >"$W/pod.env" || fail "validation (see above)"
validate --render "post-render-prod=$W/post-render-prod.yaml" || fail "validation of release prod"
check_auth_url_forms
check_config_as_pod
check_mutations
say "deploy/ OK"
