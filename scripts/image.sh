#!/usr/bin/env bash
# Builds the container image from ./Dockerfile and tests it, on a machine with no Docker
# engine: Debian's mmdebstrap makes the debian:bookworm-slim base from the same mirror apt
# uses here, podman imports it, buildah builds the Dockerfile (chroot isolation, vfs
# storage), and the image is run with `buildah run`. Exits non-zero on any failure.
#
# What it checks, in the image:
#   - size <= 20 MiB; config: USER 65532:65532, EXPOSE 8872, HEALTHCHECK --probe, ENTRYPOINT;
#     no shell inside
#   - --version; --check-config on examples/config.yaml (placeholders filled, secrets from
#     the environment, never echoed)
#   - serving against the dev tenant (<build>/tools/dev-tenant on host loopback; chroot
#     isolation shares the host network): /healthz and /readyz answered to --probe run
#     inside the image, /v1/oauth/start answers 302 to the tenant with a sealed cookie,
#     the process runs as uid 65532, SIGTERM ends it with status 0
#   - the image's own CA store: without tenantCaFile the dev tenant (private CA) is not
#     trusted (/readyz 503); with the dev CA in place of the image's bundle it is
#   - the same binary serving from a read-only bind of the image's root, as 65532, with no
#     /dev, /proc or /etc/hosts (readOnlyRootFilesystem)
#
# Usage: scripts/image.sh            (root; installs mmdebstrap, podman, buildah if missing)
# Env:   HA_IMAGE_CACHE     storage, base tarball (default /var/cache/houston-auth-image)
#        HA_IMAGE_TAG       image name (default localhost/houston-auth:ci)
#        HA_IMAGE_BASE_DAYS rebuild base.tar when older (default 7 days: security updates)
#        HA_IMAGE_HOST_BUILD host build dir for the dev tenant (default build, as test.sh)
set -euo pipefail
cd "$(dirname "$0")/.."

CACHE=${HA_IMAGE_CACHE:-/var/cache/houston-auth-image}
TAG=${HA_IMAGE_TAG:-localhost/houston-auth:ci}
HOST_BUILD=${HA_IMAGE_HOST_BUILD:-build}
BUILD_TAG=localhost/houston-auth-build:cache
BASE_NAME=docker.io/library/debian:bookworm-slim
BASE_DAYS=${HA_IMAGE_BASE_DAYS:-7}
MAX_BYTES=$((20 * 1024 * 1024))
UID_EXPECTED=65532
G=(--root "$CACHE/storage" --runroot "$CACHE/run" --storage-driver vfs)
T0=$(date +%s)

say() { echo "image.sh [$(($(date +%s) - T0))s] $*"; }
fail() {
  echo "image.sh: FAILED: $*" >&2
  exit 1
}

[ "$(id -u)" -eq 0 ] || fail "run as root (mmdebstrap, buildah chroot isolation)"

install_tools() {
  local missing=() pkg
  for pkg in mmdebstrap podman buildah; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' ||
      missing+=("$pkg")
  done
  scripts/deps.sh build dev
  [ ${#missing[@]} -eq 0 ] && return 0
  say "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# The Debian archives apt uses on this machine, as a sources.list for mmdebstrap.
write_sources() {
  local out=$1
  [ -n "$(apt-get indextargets 'Created-By: Packages' 2>/dev/null)" ] || apt-get update -qq
  apt-get indextargets --format '$(REPO_URI) $(RELEASE) $(COMPONENT)' \
    'Created-By: Packages' 'Origin: Debian' | awk '$2 ~ /^bookworm/ { print "deb", $1, $2, $3 }' |
    sort -u >"$out"
  [ -s "$out" ] || fail "apt knows no Debian bookworm archive (apt-get update?)"
}

# base.tar from Debian's packages, rebuilt when older than BASE_DAYS; imported when new.
prepare_base() {
  local tar=$CACHE/base.tar
  mkdir -p "$CACHE"
  if [ ! -s "$tar" ] || [ -n "$(find "$tar" -mtime +"$BASE_DAYS" 2>/dev/null)" ]; then
    say "mmdebstrap --variant=minbase bookworm (cached in $tar)"
    write_sources "$CACHE/sources.list"
    mmdebstrap --quiet --variant=minbase --format=tar bookworm "$tar.tmp" "$CACHE/sources.list"
    mv "$tar.tmp" "$tar"
  fi
  if [ "$tar" -nt "$CACHE/base.imported" ] || ! podman "${G[@]}" image exists "$BASE_NAME"; then
    say "podman import base.tar as $BASE_NAME"
    podman "${G[@]}" import --quiet \
      --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
      --change 'CMD ["bash"]' "$tar" "$BASE_NAME" >/dev/null
    touch -r "$tar" "$CACHE/base.imported"
  fi
}

# One build with layer caching. The build stage's last layer is then tagged, so its chain
# (the installed build packages above all) survives the prune that removes every untagged
# leftover of earlier builds and keeps the vfs storage bounded.
build_image() {
  local stage_id
  say "buildah bud -> $TAG"
  buildah "${G[@]}" bud --isolation chroot --pull=never --format docker --layers -t "$TAG" . \
    >"$CACHE/bud.log" 2>&1 || { tail -40 "$CACHE/bud.log"; fail "buildah bud (log: $CACHE/bud.log)"; }
  stage_id=$(awk '/^\[2\/2\] STEP 1\// { print id; exit } /^--> [0-9a-f]+$/ { id = $2 }' "$CACHE/bud.log")
  [ -n "$stage_id" ] || fail "no build-stage image id in the buildah log"
  buildah "${G[@]}" tag "$stage_id" "$BUILD_TAG"
  buildah "${G[@]}" rm --all >/dev/null 2>&1 || true
  for _ in 1 2 3 4 5 6; do
    [ -n "$(buildah "${G[@]}" rmi --prune 2>/dev/null)" ] || break
  done
}

# The build stage builds the sidecar alone: no test framework, no dev-peer libraries.
check_build_stage() {
  local ctr mnt h
  ctr=$(buildah "${G[@]}" from --pull-never --quiet "$BUILD_TAG")
  mnt=$(buildah "${G[@]}" mount "$ctr")
  for h in /usr/include/cmocka.h /usr/include/jwt.h; do
    [ ! -e "$mnt$h" ] || { buildah "${G[@]}" rm "$ctr" >/dev/null; fail "the build stage has $h"; }
  done
  buildah "${G[@]}" umount "$ctr" >/dev/null
  buildah "${G[@]}" rm "$ctr" >/dev/null
  say "build stage OK: no cmocka, no libjwt"
}

check_config_of_image() {
  local size conf want
  size=$(podman "${G[@]}" image inspect --format '{{.Size}}' "$TAG")
  say "image size: $size bytes ($(awk -v b="$size" 'BEGIN { printf "%.2f", b / 1048576 }') MiB)"
  [ "$size" -le "$MAX_BYTES" ] || fail "image is $size bytes, over 20 MiB"
  conf=$(buildah "${G[@]}" inspect --type image --format \
    'user={{.Docker.Config.User}} ports={{.Docker.Config.ExposedPorts}} health={{.Docker.Config.Healthcheck.Test}} entry={{.Docker.Config.Entrypoint}}' \
    "$TAG")
  want="user=$UID_EXPECTED:$UID_EXPECTED ports=map[8872/tcp:{}] health=[CMD /houston-auth --probe http://127.0.0.1:8872/healthz] entry=[/houston-auth]"
  [ "$conf" = "$want" ] || fail "image config: got '$conf', want '$want'"
  MNT=$(buildah "${G[@]}" mount "$CTR")
  for f in /bin/sh /usr/bin/sh /bin/bash /usr/bin/curl /usr/bin/apt-get; do
    [ ! -e "$MNT$f" ] || fail "the runtime image has $f"
  done
  [ -x "$MNT/houston-auth" ] || fail "no /houston-auth in the image"
  [ "$(grep -c 'BEGIN CERTIFICATE' "$MNT/etc/ssl/certs/ca-certificates.crt")" -gt 100 ] ||
    fail "the image's CA bundle is missing or short"
  say "image config OK; $(find "$MNT" -type f | wc -l) files, no shell"
}

# Dev tenant on host loopback with a private CA; the sidecar in the image reaches it.
start_tenant() {
  local line=
  build_host_tools
  TENANT_SECRET=$(openssl rand -hex 24)
  "$HOST_BUILD/tools/dev-tenant" --listen 127.0.0.1:0 --state-dir "$WORK/tenant" \
    --client-id houston-auth-image-test --client-secret "$TENANT_SECRET" \
    --callback https://houston.astro.example.com/v1/oauth/redirect \
    --logout-url https://app.astro.example.com/logout --audience astronomer-ee \
    >"$WORK/tenant.out" 2>"$WORK/tenant.log" &
  TENANT_PID=$!
  for _ in $(seq 1 100); do
    line=$(grep -o 'ready https://localhost:[0-9]*/' "$WORK/tenant.out" || true)
    [ -n "$line" ] && break
    sleep 0.1
  done
  [ -n "$line" ] || fail "the dev tenant did not start ($(tail -3 "$WORK/tenant.log"))"
  TENANT_HOST=${line#ready https://}
  TENANT_HOST=${TENANT_HOST%/}
  say "dev tenant at https://$TENANT_HOST/"
}

build_host_tools() {
  local b=$HOST_BUILD
  # Keeps the build type and the other options of an existing build directory.
  cmake -S . -B "$b" -DHA_BUILD_DEV_TOOLS=ON >"$WORK/host-build.log" 2>&1 ||
    { tail -20 "$WORK/host-build.log"; fail "configuring $b"; }
  cmake --build "$b" -j"$(nproc 2>/dev/null || echo 2)" --target dev-tenant >>"$WORK/host-build.log" 2>&1 ||
    { tail -20 "$WORK/host-build.log"; fail "building $b/tools/dev-tenant"; }
}

# Mounted read-only at /etc/houston-auth: the example config with its placeholders filled,
# the tenant CA, and the cookie secret as a file (as the Kubernetes Secret mounts it).
write_config() {
  local d=$WORK/etc
  mkdir -p "$d"
  sed -e "s|<default-app-client-id>|houston-auth-image-test|" \
    -e "s|<tenant-name>.auth0.com|$TENANT_HOST|" examples/config.yaml >"$d/config.yaml"
  if sed 's/#.*//' "$d/config.yaml" | grep -q '<'; then
    fail "examples/config.yaml has a placeholder this script does not fill"
  fi
  cp "$WORK/tenant/ca.pem" "$d/tenant-ca.pem"
  COOKIE_SECRET=$(openssl rand -base64 48)
  printf '%s' "$COOKIE_SECRET" >"$d/cookie-secret"
  chmod 0755 "$d"
  chmod 0644 "$d"/*
}

in_image() { # [buildah run options...] -- args...
  buildah "${G[@]}" run --isolation chroot "$@"
}

check_cli() {
  local out version
  version=$(sed -n 's/^project(houston_auth VERSION \([0-9.]*\).*/\1/p' CMakeLists.txt)
  out=$(in_image "$CTR" -- /houston-auth --version)
  [ "$out" = "houston-auth $version" ] || fail "--version printed '$out'"
  out=$(in_image -v "$WORK/etc:/etc/houston-auth:ro" -e AUTH0_CLIENT_SECRET="$TENANT_SECRET" \
    -e AUTH_SIDECAR_COOKIE_SECRET="$COOKIE_SECRET" "$CTR" -- \
    /houston-auth --config /etc/houston-auth/config.yaml --check-config 2>&1) ||
    fail "--check-config refused the example config: $out"
  grep -q '^configuration OK$' <<<"$out" || fail "--check-config: no 'configuration OK'"
  grep -q "$TENANT_HOST" <<<"$out" || fail "--check-config did not resolve the tenant"
  if grep -qF -e "$TENANT_SECRET" -e "$COOKIE_SECRET" <<<"$out"; then
    fail "--check-config printed a secret"
  fi
  if in_image "$CTR" -- /houston-auth --probe http://127.0.0.1:1/healthz 2>/dev/null; then
    fail "--probe succeeded against a closed port"
  fi
  say "--version, --check-config (secrets masked), --probe failure OK"
}

# Starts the sidecar in the image with examples/config.yaml, the client secret from the
# environment and the cookie secret from a file; sets SIDE_PID (buildah) and SIDE_PORT.
start_sidecar() { # log, tenant CA file ("" = the image's store), buildah-run options...
  local log=$1 ca=$2
  shift 2
  in_image -v "$WORK/etc:/etc/houston-auth:ro" -e AUTH0_CLIENT_SECRET="$TENANT_SECRET" \
    -e AUTH_SIDECAR_COOKIE_SECRET_FILE=/etc/houston-auth/cookie-secret \
    -e AUTH_SIDECAR_TENANT_CA_FILE="$ca" -e AUTH_SIDECAR_LISTEN=127.0.0.1:0 "$@" "$CTR" -- \
    /houston-auth --config /etc/houston-auth/config.yaml 2>"$log" &
  SIDE_PID=$!
  SIDE_PORT=$(wait_port "$log")
}

wait_port() { # log: prints the port from the "listening" line
  local port=
  for _ in $(seq 1 100); do
    port=$(grep -o '"event":"listening".*"port":"[0-9]*"' "$1" 2>/dev/null |
      grep -o '"port":"[0-9]*"' | grep -o '[0-9]*' || true)
    [ -n "$port" ] && break
    sleep 0.1
  done
  [ -n "$port" ] || fail "houston-auth did not start: $(tail -3 "$1")"
  echo "$port"
}

probe_in_image() { # path: 0 when /path answers 200 within 10 s
  for _ in $(seq 1 50); do
    in_image "$CTR" -- /houston-auth --probe "http://127.0.0.1:$SIDE_PORT$1" 2>/dev/null &&
      return 0
    sleep 0.2
  done
  return 1
}

pid_below() { # ancestor pid, command name: the descendant's pid
  ps -e -o pid=,ppid=,comm= | awk -v root="$1" -v name="$2" '
    { pp[$1] = $2; c[$1] = $3 }
    END { for (p in pp) if (c[p] == name) { q = p; while ((q in pp) && q != root && q > 1) q = pp[q]
                                            if (q == root) print p } }'
}

stop_sidecar() { # log: SIGTERM to houston-auth itself (buildah would SIGKILL it)
  local pid rc=0
  pid=$(pid_below "$SIDE_PID" houston-auth)
  [ -n "$pid" ] || fail "houston-auth process not found under buildah run"
  kill -TERM "$pid"
  for _ in $(seq 1 250); do
    kill -0 "$SIDE_PID" 2>/dev/null || break
    sleep 0.1
  done
  kill -0 "$SIDE_PID" 2>/dev/null && fail "houston-auth still running 25 s after SIGTERM"
  wait "$SIDE_PID" || rc=$?
  SIDE_PID=
  [ "$rc" -eq 0 ] || fail "houston-auth exited $rc on SIGTERM: $(tail -3 "$1")"
  grep -q '"event":"stopped"' "$1" || fail "no 'stopped' log line after SIGTERM"
}

check_serve() {
  local log=$WORK/sidecar.log pid uid hdrs metrics
  start_sidecar "$log" /etc/houston-auth/tenant-ca.pem
  pid=$(pid_below "$SIDE_PID" houston-auth)
  uid=$(awk '/^Uid:/ { print $2 }' "/proc/$pid/status")
  [ "$uid" = "$UID_EXPECTED" ] || fail "houston-auth runs as uid $uid, want $UID_EXPECTED"
  probe_in_image /healthz || fail "/healthz from inside the image"
  probe_in_image /readyz || fail "/readyz from inside the image: $(tail -3 "$log")"
  hdrs=$(curl -sS -o /dev/null -D - "http://127.0.0.1:$SIDE_PORT/v1/oauth/start?provider=auth0&integration=self&redirect=/oauth")
  grep -qi "^location: https://$TENANT_HOST/authorize?" <<<"$hdrs" ||
    fail "/v1/oauth/start did not redirect to the tenant: $hdrs"
  grep -qi '^set-cookie: __Host-ha_txn_' <<<"$hdrs" || fail "/v1/oauth/start set no transaction cookie"
  metrics=$(curl -sS "http://127.0.0.1:$SIDE_PORT/metrics")
  grep -q '^houston_auth_build_info' <<<"$metrics" || fail "/metrics has no houston_auth_build_info"
  stop_sidecar "$log"
  if grep -qF -e "$TENANT_SECRET" -e "$COOKIE_SECRET" "$log"; then
    fail "a secret reached the log"
  fi
  say "served from the image as uid $uid: /healthz, /readyz (tenant over TLS), start 302 + sealed cookie, /metrics, SIGTERM exit 0"
}

# The image's CA store: the tenant is trusted only through a CA the image knows.
check_ca_store() {
  local log=$WORK/ca.log code
  start_sidecar "$log" ""
  sleep 1
  code=$(curl -sS -o /dev/null -w '%{http_code}' "http://127.0.0.1:$SIDE_PORT/readyz")
  [ "$code" = 503 ] || fail "/readyz answered $code with an untrusted tenant CA, want 503"
  stop_sidecar "$log"
  start_sidecar "$log" "" -v "$WORK/etc/tenant-ca.pem:/etc/ssl/certs/ca-certificates.crt:ro"
  probe_in_image /readyz || fail "/readyz with the dev CA as the image's bundle: $(tail -3 "$log")"
  stop_sidecar "$log"
  say "CA store: untrusted tenant -> 503; dev CA at /etc/ssl/certs/ca-certificates.crt -> ready"
}

# readOnlyRootFilesystem: the image's root bound read-only in a private mount namespace,
# run as 65532 with nothing else mounted (no /dev, /proc, /etc/hosts); the dev CA is bound
# over the image's bundle and the config comes from the environment.
check_read_only() {
  local log=$WORK/ro.log ro=$WORK/ro
  mkdir -p "$ro"
  unshare --mount --fork -- sh -c 'set -e
    mount --bind "$1" "$2"
    mount -o remount,bind,ro "$2"
    mount --bind "$3" "$2/etc/ssl/certs/ca-certificates.crt"
    exec env -i AUTH0_CLIENT_SECRET="$4" AUTH_SIDECAR_COOKIE_SECRET="$5" AUTH0_BASE_DOMAIN="$6" \
      GLOBAL_BASE_DOMAIN=astro.example.com AUTH0_CLIENT_ID=houston-auth-image-test \
      AUTH_SIDECAR_LISTEN=127.0.0.1:0 "$7" --userspec=65532:65532 "$2" /houston-auth' \
    sh "$MNT" "$ro" "$WORK/etc/tenant-ca.pem" "$TENANT_SECRET" "$COOKIE_SECRET" "$TENANT_HOST" \
    "$(command -v chroot)" 2>"$log" &
  SIDE_PID=$!
  SIDE_PORT=$(wait_port "$log")
  probe_in_image /readyz || fail "/readyz from a read-only root: $(tail -3 "$log")"
  stop_sidecar "$log"
  say "read-only root, uid 65532, no /dev or /proc: ready, SIGTERM exit 0"
}

cleanup() {
  local rc=$?
  set +e
  if [ -n "${SIDE_PID:-}" ]; then
    local inner
    inner=$(pid_below "$SIDE_PID" houston-auth)
    kill -KILL ${inner:+"$inner"} "$SIDE_PID" 2>/dev/null
  fi
  [ -n "${TENANT_PID:-}" ] && kill "$TENANT_PID" 2>/dev/null
  wait 2>/dev/null
  if [ -n "${CTR:-}" ]; then
    buildah "${G[@]}" umount "$CTR" >/dev/null 2>&1
    buildah "${G[@]}" rm "$CTR" >/dev/null 2>&1
  fi
  rm -rf "$WORK"
  [ "$rc" -eq 0 ] && say "image OK ($TAG)"
  exit "$rc"
}

WORK=$(mktemp -d)
set -E
trap 'echo "image.sh: FAILED at line $LINENO: $BASH_COMMAND" >&2' ERR
trap cleanup EXIT INT TERM
install_tools
prepare_base
build_image
check_build_stage
CTR=$(buildah "${G[@]}" from --pull-never --quiet "$TAG")
check_config_of_image
start_tenant
write_config
check_cli
check_serve
check_ca_store
check_read_only
