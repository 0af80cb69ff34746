#!/usr/bin/env bash
# Installs the Debian 12 packages houston-auth needs, only those missing.
# Usage: scripts/deps.sh [build|dev|test|browser|bench]...   (build is always included)
#
#   build    the sidecar alone (CMake's default; the Dockerfile's build stage)
#   dev      + the dev tenant and the Houston stand-in (HA_BUILD_DEV_TOOLS; ./dev.sh)
#   test     + the tests (HA_BUILD_TESTS, which implies the dev tools; nginx for the edge
#            test; ./test.sh)
#   browser  + Debian's Chromium and Node.js for the browser test
#   bench    + the reference servers and load tools of bench/run.sh
set -euo pipefail

want=(build-essential cmake pkg-config ca-certificates curl openssl
      libmicrohttpd-dev libssl-dev libcurl4-openssl-dev libjansson-dev libyaml-dev)
dev=(libjwt-dev)
for group in "$@"; do
  case "$group" in
    build) ;;
    dev) want+=("${dev[@]}") ;;
    test) want+=("${dev[@]}" libcmocka-dev clang-format nginx) ;;
    browser)
      want+=(chromium)
      # A machine may already carry a newer Node.js (e.g. NodeSource's, which bundles npm and
      # conflicts with Debian's npm package): use it when both commands exist.
      if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
        want+=(nodejs npm)
      fi ;;
    bench) want+=("${dev[@]}" nginx apache2 libapache2-mod-auth-openidc wrk) ;;
    *) echo "deps.sh: unknown group '$group'" >&2; exit 2 ;;
  esac
done

missing=()
for pkg in "${want[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$pkg")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "deps.sh: installing ${missing[*]}" >&2
if [ "$(id -u)" -ne 0 ]; then
  SUDO=sudo
else
  SUDO=
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
