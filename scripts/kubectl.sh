#!/usr/bin/env bash
# Prints the path of Debian 12's kubectl 1.20 (kustomize v2.0.3), the one deploy/ is written
# for. Installing kubernetes-client would clash with another kubectl package that owns
# /usr/bin/kubectl, so unless it is installed the .deb is unpacked into the cache.
# Used by scripts/check-deploy.sh and tests/edge/run.sh. Root for the apt steps.
# Env: HA_DEPLOY_CACHE  where the .deb is unpacked (default /var/cache/houston-auth-deploy)
set -euo pipefail
CACHE=${HA_DEPLOY_CACHE:-/var/cache/houston-auth-deploy}
dir=$CACHE/kubernetes-client
if dpkg-query -W -f='${Status}' kubernetes-client 2>/dev/null | grep -q 'install ok installed'; then
  echo /usr/bin/kubectl
  exit 0
fi
if [ ! -x "$dir/usr/bin/kubectl" ]; then
  mkdir -p "$CACHE"
  apt-cache policy kubernetes-client 2>/dev/null | grep Candidate: | grep -qv none ||
    apt-get update -qq >&2
  if ! (cd "$CACHE" && rm -f kubernetes-client_*.deb && apt-get download -qq kubernetes-client >&2 2>/dev/null); then
    echo "kubectl.sh: apt-get download kubernetes-client failed" >&2
    exit 1
  fi
  deb=$(ls "$CACHE"/kubernetes-client_*.deb)
  rm -rf "$dir.tmp" && dpkg-deb -x "$deb" "$dir.tmp" && rm -rf "$dir" && mv "$dir.tmp" "$dir"
  rm -f "$deb"
fi
echo "$dir/usr/bin/kubectl"
