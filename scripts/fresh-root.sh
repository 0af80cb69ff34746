#!/usr/bin/env bash
# Runs one of the README's commands as a new user would, on a fresh machine: a clean clone of
# the committed HEAD inside a new Debian 12 root filesystem that holds only what a new
# machine of this kind has (gcc, cmake, git, the clang tools, Node.js and npm; none of the
# project's libraries). .ci/run uses it so that a README command that breaks on a fresh
# machine fails CI, not a new user (it has happened: dev.sh needed cmocka).
#
#   scripts/fresh-root.sh [--until REGEX] [--timeout S] -- COMMAND [ARGS...]
#
#   scripts/fresh-root.sh -- ./test.sh
#   scripts/fresh-root.sh --until 'self-check: logged in' -- ./dev.sh
#
# --until REGEX  COMMAND is a server: succeed once its output matches REGEX, then stop it;
#                fail if it prints 'self-check FAILED' or 'gate-check FAILED', exits, or times out first
# --timeout S    give up after S seconds (default 2400)
#
# The base root filesystem is built once with mmdebstrap from the Debian archives apt uses
# here and cached as a tarball in $HA_FRESH_CACHE (default /var/tmp/houston-auth-fresh),
# named by a hash of its package list, and rebuilt when older than 7 days (security
# updates). Each run unpacks a new copy, so nothing one run installs reaches the next.
# Needs root (mmdebstrap, chroot, mounts); only committed work is cloned.
set -euo pipefail
until_re="" timeout_s=2400
while [ $# -gt 0 ]; do
  case "$1" in
    --until) until_re=$2; shift 2 ;;
    --timeout) timeout_s=$2; shift 2 ;;
    --) shift; break ;;
    *) break ;;
  esac
done
[ $# -gt 0 ] || { sed -n '2,20p' "$0" >&2; exit 2; }
say() { echo "fresh-root: $*" >&2; }
[ "$(id -u)" -eq 0 ] || { say "needs root (mmdebstrap, chroot)"; exit 2; }
repo=$(cd "$(dirname "$0")/.." && pwd)
[ -z "$(git -C "$repo" status --porcelain --untracked-files=no)" ] ||
  say "note: uncommitted changes are not in the clone"

# What a new machine of this kind has before the README's commands (and no more).
pkgs=gcc,g++,make,cmake,git,curl,ca-certificates,clang,clang-format,clang-tidy,cppcheck
pkgs=$pkgs,clangd,bear,gdb,valgrind,strace,python3,procps,iproute2,xz-utils
cache=${HA_FRESH_CACHE:-/var/tmp/houston-auth-fresh}
base=$cache/base-$(printf '%s bookworm minbase' "$pkgs" | sha256sum | cut -c1-12).tar

build_base() {
  local sources
  if ! command -v mmdebstrap >/dev/null; then
    say "installing mmdebstrap"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mmdebstrap >/dev/null 2>&1 ||
      { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mmdebstrap >/dev/null; }
  fi
  mkdir -p "$cache"
  sources=$cache/sources.list
  [ -n "$(apt-get indextargets 'Created-By: Packages' 2>/dev/null)" ] || apt-get update -qq
  apt-get indextargets --format '$(REPO_URI) $(RELEASE) $(COMPONENT)' 'Created-By: Packages' \
    'Origin: Debian' | awk '$2 ~ /^bookworm/ { print "deb", $1, $2, $3 }' | sort -u >"$sources"
  [ -s "$sources" ] || { say "apt knows no Debian bookworm archive"; exit 2; }
  say "building the base root filesystem (cached in $base)"
  mmdebstrap --quiet --variant=minbase --format=tar --include="$pkgs" bookworm "$base.partial" \
    "$sources"
  mv "$base.partial" "$base"
  find "$cache" -maxdepth 1 -name 'base-*.tar' ! -path "$base" -delete
}
if [ ! -s "$base" ] || [ -n "$(find "$base" -mtime +7 2>/dev/null)" ]; then
  build_base
fi

root=$(mktemp -d /var/tmp/houston-auth-fresh-root.XXXXXX)
log=$root.log
mounted=()
cleanup() {
  local p m
  set +e
  for p in /proc/[0-9]*; do # whatever the command left running inside the root
    [ "$(readlink "$p/root" 2>/dev/null)" = "$root" ] && kill -9 "${p#/proc/}" 2>/dev/null
  done
  sleep 1
  for ((m = ${#mounted[@]} - 1; m >= 0; m--)); do umount -l "${mounted[$m]}" 2>/dev/null; done
  rm -rf "$root"
}
trap cleanup EXIT INT TERM
tar -xf "$base" -C "$root"
cp /etc/resolv.conf "$root/etc/resolv.conf"
# This machine's extra trust anchors (a proxy to the package archives may need them).
if ls /usr/local/share/ca-certificates/*.crt >/dev/null 2>&1; then
  mkdir -p "$root/usr/local/share/ca-certificates"
  cp /usr/local/share/ca-certificates/*.crt "$root/usr/local/share/ca-certificates/"
  chroot "$root" update-ca-certificates >/dev/null 2>&1
fi
# Node.js and npm as a new machine of this kind has them (not from Debian's packages).
[ -f "$HOME/.npmrc" ] && cp "$HOME/.npmrc" "$root/root/.npmrc"
if command -v node >/dev/null && [ -d /usr/lib/node_modules/npm ]; then
  cp "$(command -v node)" "$root/usr/bin/node"
  mkdir -p "$root/usr/lib/node_modules"
  cp -r /usr/lib/node_modules/npm "$root/usr/lib/node_modules/"
  ln -sf ../lib/node_modules/npm/bin/npm-cli.js "$root/usr/bin/npm"
  ln -sf ../lib/node_modules/npm/bin/npx-cli.js "$root/usr/bin/npx"
fi
git clone -q "$repo" "$root/root/project"

mount_in() { # type-or-bind source target
  if [ "$1" = bind ]; then mount --bind "$2" "$3"; else mount -t "$1" "$2" "$3"; fi
  mounted+=("$3")
}
mount_in bind "$root" "$root" # a mount point of its own, as buildah's chroot isolation wants
mount_in proc proc "$root/proc"
mount_in bind /dev "$root/dev"
mount_in sysfs sys "$root/sys"
mount_in tmpfs tmpfs "$root/run"

# The machine's environment goes in as it is (a new machine of this kind has it: its trust
# settings such as NODE_EXTRA_CA_CERTS and SSL_CERT_FILE name /etc/ssl/certs, which the
# update-ca-certificates above filled), with HOME and PATH of the root's own.
cmd=$(printf '%q ' "$@")
say "running '$*' in a fresh Debian 12 root (log $log)"
t0=$(date +%s)
if [ -z "$until_re" ]; then
  rc=0
  timeout -k 10 "$timeout_s" chroot "$root" /usr/bin/env HOME=/root CI=true \
    PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    /bin/bash -c "cd /root/project && $cmd" </dev/null 2>&1 | tee "$log" || rc=${PIPESTATUS[0]}
  say "'$*' exited $rc after $(($(date +%s) - t0)) s"
  exit "$rc"
fi
chroot "$root" /usr/bin/env HOME=/root \
  PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
  /bin/bash -c "cd /root/project && exec $cmd" </dev/null >"$log" 2>&1 &
pid=$!
rc=1
for _ in $(seq 1 "$timeout_s"); do
  if grep -qE "$until_re" "$log"; then rc=0; break; fi
  grep -qE '(self|gate)-check FAILED' "$log" && break
  kill -0 "$pid" 2>/dev/null || break
  sleep 1
done
kill "$pid" 2>/dev/null || true
tail -30 "$log"
if [ "$rc" -eq 0 ]; then
  say "'$*' printed /$until_re/ after $(($(date +%s) - t0)) s"
else
  say "'$*' never printed /$until_re/ (failed, exited or timed out after $(($(date +%s) - t0)) s)"
fi
exit "$rc"
