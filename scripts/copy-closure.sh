#!/usr/bin/env bash
# Stages a root filesystem for a FROM scratch image: the binary, exactly the shared libraries
# `ldd` names for it (dynamic loader included, symlinks resolved, each at the path ldd
# printed), the system CA certificates, and the few /etc files a non-root, shell-less
# process wants. Nothing is listed by hand, so a new library dependency needs no edit here.
#
# Usage: scripts/copy-closure.sh BINARY ROOT
#   ROOT/houston-auth                          the binary (named after BINARY)
#   ROOT/lib/..., ROOT/lib64/...               its ldd closure
#   ROOT/etc/ssl/certs/ca-certificates.crt     libcurl's default CA bundle (CURLOPT_CAINFO)
#   ROOT/etc/ssl/certs/<hash>.N                the same CAs as hashed files, because the
#                                              sidecar also sets CURLOPT_CAPATH=/etc/ssl/certs
#                                              when tenantCaFile adds a CA of its own
#   ROOT/etc/passwd, ROOT/etc/group            uid/gid 65532 "houston-auth" (no shell)
#   ROOT/etc/nsswitch.conf                     hosts: files dns (Kubernetes mounts
#                                              /etc/hosts and /etc/resolv.conf)
# Files the libraries read only if present and that are left out on purpose:
# /usr/lib/ssl/openssl.cnf (OpenSSL defaults), /etc/gnutls/config (GnuTLS defaults),
# /etc/localtime (UTC; the logs are UTC anyway), /etc/ld.so.cache (the loader's built-in
# search path covers /lib/x86_64-linux-gnu).
set -euo pipefail

if [ $# -ne 2 ]; then
  echo "usage: $0 BINARY ROOT" >&2
  exit 2
fi
bin=$1
root=$2
uid=65532
ca_bundle=/etc/ssl/certs/ca-certificates.crt

[ -x "$bin" ] || { echo "copy-closure: $bin is not an executable" >&2; exit 1; }
[ -s "$ca_bundle" ] || { echo "copy-closure: $ca_bundle missing (install ca-certificates)" >&2; exit 1; }

# ldd prints "name => /path (addr)", "/path (addr)" for the loader, "name (addr)" for the
# vDSO (no file), and "name => not found" for a library it cannot resolve.
ldd_out=$(ldd "$bin")
if grep -q 'not found' <<<"$ldd_out"; then
  echo "copy-closure: unresolved libraries:" >&2
  grep 'not found' <<<"$ldd_out" >&2
  exit 1
fi
mapfile -t libs < <(awk '$2 == "=>" && $3 ~ /^\// { print $3; next }
                         $1 ~ /^\// { print $1 }' <<<"$ldd_out")
if [ ${#libs[@]} -eq 0 ]; then
  echo "copy-closure: ldd named no libraries for $bin (static binary?)" >&2
  exit 1
fi

mkdir -p "$root"
install -m 0755 "$bin" "$root/$(basename "$bin")"
for lib in "${libs[@]}"; do
  mkdir -p "$root$(dirname "$lib")"
  cp -L "$lib" "$root$lib"
  chmod 0755 "$root$lib"
done

mkdir -p "$root/etc/ssl/certs"
cp -L "$ca_bundle" "$root$ca_bundle"
hashed=0
for f in /etc/ssl/certs/*.[0-9]; do
  [ -e "$f" ] || continue
  cp -L "$f" "$root$f"
  hashed=$((hashed + 1))
done
[ "$hashed" -gt 0 ] || { echo "copy-closure: no hashed CA files in /etc/ssl/certs" >&2; exit 1; }

printf 'houston-auth:x:%d:%d:houston-auth:/:/nonexistent\n' \
  "$uid" "$uid" >"$root/etc/passwd"
printf 'houston-auth:x:%d:\n' "$uid" >"$root/etc/group"
printf 'hosts: files dns\n' >"$root/etc/nsswitch.conf"
chmod 0644 "$root/etc/passwd" "$root/etc/group" "$root/etc/nsswitch.conf" "$root$ca_bundle"

echo "copy-closure: $bin + ${#libs[@]} libraries + $hashed CA files -> $root ($(du -sh "$root" | cut -f1))"
