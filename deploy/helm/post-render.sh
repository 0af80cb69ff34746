#!/usr/bin/env bash
# Helm post-renderer: adds houston-auth to the objects Astronomer's chart renders.
#
#   helm upgrade --install astronomer astronomer/astronomer -n astronomer \
#     -f config.yaml -f deploy/helm/values-houston-auth.yaml \
#     --post-renderer deploy/helm/post-render.sh
#
# Helm writes the rendered chart on stdin; this puts it in place of deploy/base's stand-in
# (astronomer-chart.yaml), runs `kubectl kustomize`, and writes the result on stdout, so
# the sidecar stays part of the release on every upgrade.
#   HOUSTON_AUTH_RELEASE  the Helm release name (default astronomer); the base's object
#                         names and release labels are renamed to match
#   HOUSTON_AUTH_IMAGE    image to run, NAME[:TAG] (default: the base's houston-auth:0.1.0)
#   KUBECTL               kubectl to run (default kubectl; kustomize v2.0.3 or later)
set -euo pipefail

base=$(cd "$(dirname "$0")/../base" && pwd)
release=${HOUSTON_AUTH_RELEASE:-astronomer}
kubectl=${KUBECTL:-kubectl}
if ! [[ $release =~ ^[a-z0-9]([-a-z0-9]*[a-z0-9])?$ ]]; then
  echo "post-render.sh: '$release' is not a Helm release name" >&2
  exit 2
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp "$base"/*.yaml "$work"/
cat >"$work/astronomer-chart.yaml"
if [ ! -s "$work/astronomer-chart.yaml" ]; then
  echo "post-render.sh: nothing on stdin (run it as helm's --post-renderer)" >&2
  exit 2
fi
for f in "$work"/*.yaml; do
  [ "$f" = "$work/astronomer-chart.yaml" ] && continue
  sed -i -e "s/\bastronomer-houston/${release}-houston/g" \
    -e "s/^\(\s*\)release: astronomer\s*$/\1release: ${release}/" "$f"
  if [ -n "${HOUSTON_AUTH_IMAGE:-}" ]; then
    image=${HOUSTON_AUTH_IMAGE%:*}
    tag=${HOUSTON_AUTH_IMAGE##*:}
    if [ "$image" = "$HOUSTON_AUTH_IMAGE" ] || [[ $tag == */* ]]; then
      image=$HOUSTON_AUTH_IMAGE
      tag=latest
    fi
    sed -i -e "s|^    newName: houston-auth$|    newName: ${image}|" \
      -e "s|^    newTag: .*$|    newTag: \"${tag}\"|" "$f"
  fi
done
"$kubectl" kustomize "$work"
