#!/usr/bin/env bash
# Browser end-to-end tests of the web pages: Playwright (npm playwright-core) drives Debian's
# Chromium against a real ferum on a free local port, on a fresh SQLite database; axe-core
# checks accessibility; screenshots of each page, desktop and phone, go to docs/screenshots/.
#
#   bash .ci/e2e.sh PATH_TO_FERUM        (E2E_PORT=… picks the port; extra arguments after the
#                                         binary go to `node --test`, e.g. --test-name-pattern=…)
#
# Installs what is missing: Debian's chromium and fonts-dejavu-core (Cyrillic in screenshots),
# and e2e/node_modules with `npm ci` (skipped while e2e/package-lock.json is unchanged).
# Playwright never downloads a browser of its own: the tests launch /usr/bin/chromium.
set -euo pipefail
BIN=${1:?usage: e2e.sh PATH_TO_FERUM [node --test options]}
shift
cd "$(dirname "$0")/.."
ROOT=$(pwd)
CHROMIUM=${FERUM_E2E_CHROMIUM:-/usr/bin/chromium}
SHOTS="$ROOT/docs/screenshots"
ADMIN_EMAIL=admin@example.ru
ADMIN_PASSWORD='e2e admin password 1'

# shellcheck source=.ci/common.sh
. .ci/common.sh

need=()
[ -x "$CHROMIUM" ] || need+=(chromium)
dpkg-query -W -f='${Status}' fonts-dejavu-core 2>/dev/null | grep -q 'ok installed' ||
    need+=(fonts-dejavu-core)
command -v curl >/dev/null 2>&1 || need+=(curl)
if [ ${#need[@]} -gt 0 ]; then
    echo "== installing ${need[*]} (Debian packages)"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        "${need[@]}" >/dev/null
fi
if [ ! -x "$CHROMIUM" ]; then
    echo "error: $CHROMIUM is missing after installing chromium" >&2
    exit 1
fi
echo "browser: $("$CHROMIUM" --version 2>/dev/null || echo "$CHROMIUM (version unknown)")"

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    echo "error: the end-to-end tests need Node.js 20 or later with npm" >&2
    exit 1
fi
node_major=$(node -p 'process.versions.node.split(".")[0]')
if [ "$node_major" -lt 20 ]; then
    echo "error: Node.js $(node --version) is too old; the end-to-end tests need 20 or later" >&2
    exit 1
fi

# node_modules is kept between local runs; a changed lock file (or none installed) reinstalls.
lock_sum=$(sha256sum e2e/package-lock.json | cut -d' ' -f1)
stamp=e2e/node_modules/.ferum-lock.sha256
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$lock_sum" ]; then
    echo "== npm ci (e2e/)"
    (cd e2e && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error)
    echo "$lock_sum" >"$stamp"
fi

if [ ! -x "$BIN" ]; then
    echo "error: $BIN is not an executable ferum (cargo build first)" >&2
    exit 1
fi
BIN=$(cd "$(dirname "$BIN")" && pwd)/$(basename "$BIN")
free_port() {
    node -e 'const s = require("net").createServer().listen(0, "127.0.0.1", () => { console.log(s.address().port); s.close(); })'
}
PORT=${E2E_PORT:-$(free_port)}
BASE=http://127.0.0.1:$PORT

echo "== ferum serve on $BASE (SQLite in a temporary folder)"
mkdir -p "$WORK/server"
# Nothing from the caller's environment that would change the site: no other database, no
# https public URL (its cookies would be Secure, which plain http never sends back), no proxy.
# The tests sign in many times from one address: the sign-in throttles are lifted.
# Only directors need a second factor (e2e/tests/flows.test.mjs enrols one with TOTP); the
# administrators and other staff the tests make sign in with a password alone.
(cd "$WORK/server" && exec env -u DATABASE_URL -u FERUM_DATA_DIR -u FERUM_FILES_DIR \
    -u FERUM_PUBLIC_URL -u FERUM_TRUSTED_PROXIES -u FERUM_CORS_ORIGINS \
    -u FERUM_METRICS_BIND -u FERUM_METRICS_TOKEN -u FERUM_BIND \
    REDIS_URL= FERUM_MFA_ROLES=director \
    FERUM_ADMIN_EMAIL="$ADMIN_EMAIL" FERUM_ADMIN_PASSWORD="$ADMIN_PASSWORD" \
    FERUM_LOGIN_IP_BURST=100000 FERUM_LOGIN_ACCOUNT_BURST=100000 \
    FERUM_LOG=warn "$BIN" serve --bind "127.0.0.1:$PORT" >"$WORK/server.log" 2>&1) &
SERVER=$!
wait_until_up "$BASE"

echo "== node --test e2e/tests/ (screenshots into docs/screenshots/)"
mkdir -p "$SHOTS"
status=0
FERUM_URL=$BASE FERUM_ADMIN_EMAIL=$ADMIN_EMAIL FERUM_ADMIN_PASSWORD=$ADMIN_PASSWORD \
    FERUM_E2E_CHROMIUM=$CHROMIUM FERUM_SCREENSHOTS_DIR=$SHOTS \
    timeout 1200 node --test --test-reporter=spec --test-timeout=300000 "$@" e2e/tests/*.test.mjs ||
    status=$?
if [ "$status" != 0 ]; then
    echo "error: end-to-end tests failed (exit $status); the last lines of ferum's log:" >&2
    tail -n 40 "$WORK/server.log" >&2
    exit "$status"
fi
