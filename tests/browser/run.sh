#!/bin/sh
# Browser test of the operator page (gateway/www) in headless Chromium
# against the fake gateway. Needs Node >= 20, npm and Debian's chromium
# (apt-get install -y chromium). Screenshots: $BROWSER_OUT or tests/browser/out/.
set -eu
cd "$(dirname "$0")"
CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"
if [ ! -x "$CHROMIUM" ]; then
    echo "run.sh: $CHROMIUM is missing; install it with: apt-get install -y chromium" >&2
    exit 2
fi
command -v node >/dev/null || { echo "run.sh: node (>= 20) is missing" >&2; exit 2; }
if [ ! -d node_modules/playwright-core ] || [ ! -d node_modules/ws ]; then
    npm ci --no-audit --no-fund || npm install --no-audit --no-fund
fi
export CHROMIUM
export BROWSER_OUT="${BROWSER_OUT:-$PWD/out}"
mkdir -p "$BROWSER_OUT"
node --test --test-reporter=spec operator_page.test.js wallboard.test.js
echo "screenshots in $BROWSER_OUT"
