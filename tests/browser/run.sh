#!/usr/bin/env bash
# The browser test: a person's login in headless Debian chromium, end to end.
#
#   tests/browser/run.sh [BUILD_DIR]     (default: build, relative to the repository)
#
# Installs what it needs when missing (Debian's chromium, Node.js and npm; playwright-core
# from package-lock.json, which never downloads a browser), builds houston-auth, dev-tenant
# and houston-standin in BUILD_DIR, then runs login.test.js. Exits non-zero on failure.
# Screenshots: tests/browser/artifacts/. CHROMIUM=/path overrides /usr/bin/chromium.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
build=${1:-build}
case "$build" in /*) ;; *) build=$root/$build ;; esac

# Debian's chromium, and Node.js/npm unless the machine already has both (deps.sh decides).
"$root/scripts/deps.sh" browser
node_major=$(node -p 'process.versions.node.split(".")[0]')
if [ "$node_major" -lt 20 ]; then
  echo "run.sh: Node.js $(node --version) is too old: playwright-core needs 20 or newer" >&2
  exit 1
fi

# playwright-core, exactly as package-lock.json pins it (npm ci only when it differs).
want=$(node -p 'require(process.argv[1]).packages["node_modules/playwright-core"].version' \
  "$here/package-lock.json")
have=$(node -p 'try { require(process.argv[1]).version } catch (e) { "" }' \
  "$here/node_modules/playwright-core/package.json")
if [ "$want" != "$have" ]; then
  (cd "$here" && timeout 120 npm ci --no-audit --no-fund --loglevel=error)
fi

cmake -S "$root" -B "$build" -DHA_BUILD_DEV_TOOLS=ON >/dev/null
cmake --build "$build" -j2 --target houston-auth dev-tenant houston-standin >/dev/null

cd "$here"
exec timeout -k 5 180 node login.test.js "$build"
