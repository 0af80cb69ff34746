#!/usr/bin/env bash
# Command 2: builds houston-auth and runs every test: unit, integration (the sidecar, the
# dev tenant and the Houston stand-in as real processes on loopback), fuzz-corpus replay,
# a headless-Chromium login, then the whole suite again under AddressSanitizer +
# UndefinedBehaviorSanitizer.
set -euo pipefail
cd "$(dirname "$0")"
scripts/deps.sh build test

jobs=$(nproc 2>/dev/null || echo 2)
status=0

echo "== format check (clang-format)"
if ! git ls-files '*.c' '*.h' | xargs -r clang-format --dry-run -Werror 2>/tmp/ha-format.log; then
  head -40 /tmp/ha-format.log
  echo "clang-format: files above are not formatted (run: git ls-files '*.c' '*.h' | xargs clang-format -i)"
  status=1
fi

echo "== build (warnings as errors)"
cmake -S . -B build -DHA_WERROR=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$jobs"

echo "== tests"
(cd build && ctest --output-on-failure) || status=1

echo "== browser end-to-end (headless Chromium through the whole login)"
tests/browser/run.sh build || status=1

echo "== build with ASan + UBSan"
cmake -S . -B build-asan -DHA_WERROR=ON -DHA_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug >/dev/null
cmake --build build-asan -j"$jobs"

echo "== tests under ASan + UBSan (LeakSanitizer on)"
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1:detect_stack_use_after_return=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
export LSAN_OPTIONS="suppressions=$PWD/tests/lsan.supp:print_suppressions=0"
(cd build-asan && ctest --output-on-failure) || status=1

if [ "$status" -ne 0 ]; then
  echo "test.sh: FAILED"
else
  echo "test.sh: all tests passed"
fi
exit "$status"
