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
#   HOUSTON_AUTH_AUTHZ_GATE  sidecar (default): every auth-url the chart points at Houston's
#                         /v1/authorization is pointed at houston-auth's Service instead;
#                         houston: left as the chart renders it (the rollback, docs/deployment.md)
#   HOUSTON_AUTH_NAMESPACE  the release's namespace; needed only when the chart renders Houston's
#                         public auth-url, https://houston.<baseDomain>/v1/authorization (charts
#                         before 1.0 without global.enableHoustonInternalAuthorization)
#
# The auth-url rewrite works on the chart's output, not through kustomize: which UI Ingresses
# carry an auth-url (Grafana, Kibana, Prometheus, Alertmanager) depends on the chart version and
# its values, and a patch aimed at an Ingress the release lacks would fail the render. So the
# base's name-targeted auth-url patches, written for the stand-in, are dropped here, and the
# chart's two forms of Houston's URL (helper "houston.internalauthurl" in astronomer/astronomer's
# templates/_helpers.tpl) become the sidecar's:
#   http://<release>-houston.<ns>.svc.cluster.local:8871/v1/authorization
#   https://houston.<baseDomain>/v1/authorization         (namespace from HOUSTON_AUTH_NAMESPACE)
#   -> http://<release>-houston-auth.<ns>.svc.cluster.local:8872/v1/authorization
# Any other auth-url that names Houston (another release's, say) stops the render. The Airflow
# and Flower Ingresses of each Airflow deployment are not in this release: Houston creates them
# at run time (docs/deployment.md says what to do for them).
set -euo pipefail

base=$(cd "$(dirname "$0")/../base" && pwd)
release=${HOUSTON_AUTH_RELEASE:-astronomer}
kubectl=${KUBECTL:-kubectl}
gate=${HOUSTON_AUTH_AUTHZ_GATE:-sidecar}
namespace=${HOUSTON_AUTH_NAMESPACE:-}
dns_label='^[a-z0-9]([-a-z0-9]*[a-z0-9])?$'
if ! [[ $release =~ $dns_label ]]; then
  echo "post-render.sh: '$release' is not a Helm release name" >&2
  exit 2
fi
if [ -n "$namespace" ] && ! [[ $namespace =~ $dns_label ]]; then
  echo "post-render.sh: '$namespace' is not a namespace name" >&2
  exit 2
fi
if [ "$gate" != sidecar ] && [ "$gate" != houston ]; then
  echo "post-render.sh: HOUSTON_AUTH_AUTHZ_GATE is '$gate', want sidecar or houston" >&2
  exit 2
fi

# The auth-url annotation line of an Ingress, its value optionally quoted (sed -E).
ann='^([[:space:]]*["'"'"']?nginx\.ingress\.kubernetes\.io/auth-url["'"'"']?:[[:space:]]*)["'"'"']?'
end='["'"'"']?[[:space:]]*$'

# Points the chart's auth-urls at houston-auth (see the top of this file).
rewrite_auth_urls() { # file
  local host="http://${release}-houston-auth." svc=".svc.cluster.local:8872/v1/authorization" public left
  sed -i -E "s#${ann}http://${release}-houston\.([a-z0-9-]+)\.svc\.cluster\.local:8871/v1/authorization${end}#\1${host}\2${svc}#" "$1"
  public="${ann}https://houston\.[^/\"' ]+/v1/authorization${end}"
  if grep -Eq "$public" "$1"; then
    if [ -z "$namespace" ]; then
      echo "post-render.sh: the chart's auth-url is Houston's public URL; set HOUSTON_AUTH_NAMESPACE" \
        "to the release's namespace, so it can name houston-auth's Service in the cluster" >&2
      exit 2
    fi
    sed -i -E "s#${public}#\1${host}${namespace}${svc}#" "$1"
  fi
  left=$(grep -E "$ann" "$1" |
    grep -Ev "${ann}http://${release}-houston-auth\.[a-z0-9-]+\.svc\.cluster\.local:8872/v1/authorization\$" |
    grep -i houston || true)
  if [ -n "$left" ]; then
    echo "post-render.sh: an auth-url names Houston in a form this script does not know" \
      "(is HOUSTON_AUTH_RELEASE=$release the release?):" >&2
    echo "$left" >&2
    exit 2
  fi
}

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
sed -i '/^  # BEGIN auth-url/,/^  # END auth-url/d' "$work/kustomization.yaml"
if grep -q 'houston-auth-url-patch' "$work/kustomization.yaml"; then
  echo "post-render.sh: could not drop the base's auth-url patches" >&2
  exit 2
fi
if [ "$gate" = sidecar ]; then
  rewrite_auth_urls "$work/astronomer-chart.yaml"
fi
"$kubectl" kustomize "$work"
