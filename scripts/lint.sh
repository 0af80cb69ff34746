#!/usr/bin/env bash
# Static analysis of the sidecar (src/) and the development peers (tools/): cppcheck and
# clang-tidy, both clean or this script exits non-zero.
#
#   scripts/lint.sh            # both
#   scripts/lint.sh cppcheck   # one of them
#   scripts/lint.sh clang-tidy
#
# cppcheck: --enable=warning,portability,performance, suppressions (each with its reason) in
# tests/cppcheck.supp. clang-tidy: bugprone-*, clang-analyzer-*, cert-* as configured in
# .clang-tidy (each disabled check with its reason there), on a compile_commands.json from a
# cmake configure in $LINT_BUILD_DIR (default build-lint). Installs cppcheck and clang-tidy
# with apt-get when they are missing.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
build=${LINT_BUILD_DIR:-$root/build-lint}
jobs=$(nproc 2>/dev/null || echo 2)
what=${1:-all}

install_missing() {
  local missing=()
  scripts/deps.sh build dev # the configure below includes the dev peers
  command -v cppcheck >/dev/null 2>&1 || missing+=(cppcheck)
  command -v clang-tidy >/dev/null 2>&1 || missing+=(clang-tidy)
  [ ${#missing[@]} -eq 0 ] && return 0
  echo "lint.sh: installing ${missing[*]}" >&2
  local sudo=
  [ "$(id -u)" -ne 0 ] && sudo=sudo
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

sources() {
  ls src/*.c tools/*/*.c
}

run_cppcheck() {
  echo "== cppcheck $(cppcheck --version | sed 's/^Cppcheck //')"
  # The defines are the ones CMakeLists.txt gives every file.
  cppcheck --enable=warning,portability,performance --error-exitcode=1 --inline-suppr \
    --suppressions-list=tests/cppcheck.supp --std=c11 -q -j "$jobs" -I include \
    -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE -DHA_VERSION='"lint"' \
    --template='{file}:{line}: {severity}: {message} [{id}]' src tools
}

run_clang_tidy() {
  echo "== clang-tidy $(clang-tidy --version | sed -n 's/.*LLVM version //p')"
  # tools/ is linted too, so the dev peers are configured (libjwt: deps.sh dev).
  # Debug: the asserts that state internal invariants stay in, so the analyser sees them.
  cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Debug -DCMAKE_EXPORT_COMPILE_COMMANDS=ON \
    -DHA_BUILD_DEV_TOOLS=ON >/dev/null
  # One file per process, all cores; any finding (WarningsAsErrors: '*') fails its process
  # and xargs then exits non-zero.
  sources | xargs -P "$jobs" -n 1 clang-tidy -p "$build" --quiet 2>/dev/null
}

install_missing
status=0
if [ "$what" = all ] || [ "$what" = cppcheck ]; then
  run_cppcheck || status=1
fi
if [ "$what" = all ] || [ "$what" = clang-tidy ]; then
  run_clang_tidy || status=1
fi
if [ "$status" -ne 0 ]; then
  echo "lint.sh: findings above (fix them, or suppress one with its reason in" \
    "tests/cppcheck.supp or .clang-tidy)" >&2
else
  echo "lint.sh: clean"
fi
exit "$status"
