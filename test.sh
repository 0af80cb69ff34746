#!/usr/bin/env bash
# Command 2: builds houston-auth and runs every test: unit, integration (the sidecar, the
# dev tenant and the Houston stand-in as real processes on loopback), fuzz-corpus replay,
# a headless-Chromium login, static analysis (cppcheck, clang-tidy), the Kubernetes manifests
# checked offline, the container image built and run, then the whole suite again under
# AddressSanitizer + UndefinedBehaviorSanitizer and once more under ThreadSanitizer. Every
# step runs; the failed ones are listed at the end.
set -euo pipefail
cd "$(dirname "$0")"
scripts/deps.sh build test

jobs=$(nproc 2>/dev/null || echo 2)
status=0
failed=()
fail_step() {
  failed+=("$1")
  status=1
}

echo "== format check (clang-format)"
if ! git ls-files '*.c' '*.h' | xargs -r clang-format --dry-run -Werror 2>/tmp/ha-format.log; then
  head -40 /tmp/ha-format.log
  echo "clang-format: files above are not formatted (run: git ls-files '*.c' '*.h' | xargs clang-format -i)"
  fail_step "format"
fi

echo "== static analysis (cppcheck, clang-tidy)"
if ! scripts/lint.sh; then
  fail_step "lint"
fi

echo "== build (warnings as errors)"
cmake -S . -B build -DHA_WERROR=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo -DHA_BUILD_TESTS=ON \
  -DHA_BUILD_BENCH=ON >/dev/null
cmake --build build -j"$jobs"

echo "== tests"
(cd build && ctest --output-on-failure) || fail_step "tests"

echo "== browser end-to-end (headless Chromium through the whole login)"
tests/browser/run.sh build || fail_step "browser"

echo "== Kubernetes manifests (rendered and validated offline, --check-config on the pod's files)"
HA_BIN=build/houston-auth scripts/check-deploy.sh || fail_step "deploy"

echo "== nginx edge (ingress-nginx routing in front of the sidecar)"
tests/edge/run.sh build || fail_step "edge"

echo "== container image (built from the Dockerfile and run)"
HA_IMAGE_HOST_BUILD=build scripts/image.sh || fail_step "image"

echo "== build with ASan + UBSan"
cmake -S . -B build-asan -DHA_WERROR=ON -DHA_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug \
  -DHA_BUILD_TESTS=ON >/dev/null
cmake --build build-asan -j"$jobs"

echo "== tests under ASan + UBSan (LeakSanitizer on)"
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1:detect_stack_use_after_return=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
export LSAN_OPTIONS="suppressions=$PWD/tests/lsan.supp:print_suppressions=0"
(cd build-asan && ctest --output-on-failure) || fail_step "tests under ASan+UBSan"

echo "== build with ThreadSanitizer"
cmake -S . -B build-tsan -DHA_WERROR=ON -DHA_TSAN=ON -DCMAKE_BUILD_TYPE=Debug \
  -DHA_BUILD_TESTS=ON >/dev/null
cmake --build build-tsan -j"$jobs"

echo "== tests under ThreadSanitizer (MHD's thread pool, the event loop, their shared state)"
# The integration tests run the TSan-built sidecar and dev peers; the harness passes
# TSAN_OPTIONS on. A race aborts the process that has it, and every process, children
# included, writes its report to tsan-reports/tsan.<pid> instead of its log (which the
# harness deletes with its directory): any file there fails the step, even from a process
# whose exit status no test looked at. io_sync=0: by default TSan takes any write to any
# socket followed by any read from any socket as synchronization, which in the sidecar
# (every thread does socket I/O) would hide races between MHD's threads and the event loop.
tsan_reports="$PWD/build-tsan/tsan-reports"
rm -rf "$tsan_reports"
mkdir -p "$tsan_reports"
tsan_options="halt_on_error=1 abort_on_error=1 second_deadlock_stack=1 io_sync=0"
tsan_options+=" suppressions=$PWD/tests/tsan.supp log_path=$tsan_reports/tsan"
tsan_ok=1
(cd build-tsan && TSAN_OPTIONS="$tsan_options" ctest --output-on-failure) || tsan_ok=0
if compgen -G "$tsan_reports/tsan.*" >/dev/null; then
  for f in "$tsan_reports"/tsan.*; do
    echo "---- $f"
    head -60 "$f"
  done
  echo "ThreadSanitizer: the reports above are in $tsan_reports"
  tsan_ok=0
fi
[ "$tsan_ok" -eq 1 ] || fail_step "tests under TSan"

if [ "$status" -ne 0 ]; then
  echo "test.sh: FAILED: ${failed[*]}"
else
  echo "test.sh: all tests passed"
fi
exit "$status"
