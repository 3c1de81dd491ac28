#!/usr/bin/env bash
# Fuzzes the running API against its own OpenAPI document with schemathesis (from PyPI), once
# with an administrator's token and once with a client's, bounded in examples and time.
# Fails on any 5xx answer or any answer that breaks the documented schema.
set -euo pipefail
BIN=${1:?usage: fuzz.sh PATH_TO_FERUM}
PORT=${FUZZ_PORT:-18190}
BASE=http://127.0.0.1:$PORT
VENV=${FERUM_CI_VENV:-/var/tmp/ferum-ci-venv}

if [ ! -x "$VENV/bin/st" ]; then
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q --disable-pip-version-check "schemathesis>=4,<5"
fi

WORK=$(mktemp -d)
# One user sends thousands of requests: lift the per-user limit and sign-in throttles, and
# sign the administrator in with a password only.
(cd "$WORK" && exec env FERUM_MFA_ROLES=none FERUM_API_REQUESTS_PER_MINUTE=off \
    FERUM_LOGIN_IP_BURST=100000 FERUM_LOGIN_ACCOUNT_BURST=100000 REDIS_URL= \
    FERUM_ADMIN_EMAIL=fuzz-admin@example.ru FERUM_ADMIN_PASSWORD='fuzzing admin password' \
    FERUM_LOG=warn "$BIN" serve --bind "127.0.0.1:$PORT" >"$WORK/server.log" 2>&1) &
SERVER=$!
trap 'kill "$SERVER" 2>/dev/null || true; wait "$SERVER" 2>/dev/null || true; rm -rf "$WORK"' EXIT
for _ in $(seq 1 60); do curl -fs -o /dev/null "$BASE/healthz" && break; sleep 0.5; done

json() { python3 -c "import sys, json; print(json.load(sys.stdin)$1)"; }
post() { curl -fsS --max-time 30 -H 'content-type: application/json' ${3:+-H "authorization: Bearer $3"} -d "$2" "$BASE$1"; }
ADMIN=$(post /api/v1/auth/login '{"email":"fuzz-admin@example.ru","password":"fuzzing admin password"}' | json '["access_token"]')
CUSTOMER=$(post /api/v1/customers '{"name":"Fuzz","inn":"7707083893","contact_email":"a@example.ru"}' "$ADMIN" | json '["id"]')
post /api/v1/objects "{\"customer_id\":$CUSTOMER,\"name\":\"Site\",\"kind\":\"fire_alarm\"}" "$ADMIN" >/dev/null
post /api/v1/users "{\"email\":\"fuzz-client@example.ru\",\"name\":\"Client\",\"roles\":[\"client\"],\"customer_id\":$CUSTOMER,\"password\":\"fuzzing client password\"}" "$ADMIN" >/dev/null
CLIENT=$(post /api/v1/auth/login '{"email":"fuzz-client@example.ru","password":"fuzzing client password"}' | json '["access_token"]')

for who in admin client; do
    token=$ADMIN
    [ "$who" = client ] && token=$CLIENT
    echo "-- schemathesis as $who"
    # Logout and user updates would end the fuzzer's own session; they have their own tests.
    timeout 900 "$VENV/bin/st" run "$BASE/api/v1/openapi.json" --url "$BASE" \
        -H "Authorization: Bearer $token" \
        --exclude-path /api/v1/auth/logout --exclude-path '/api/v1/users/{id}' \
        --checks not_a_server_error,response_schema_conformance \
        --max-examples 10 --workers 2 --seed 20261127 --no-color
done
