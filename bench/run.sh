#!/usr/bin/env bash
# Reproducible load test of the Ferum API on one machine, everything on 127.0.0.1.
#
#   BACKEND=sqlite   bench/run.sh      # default
#   BACKEND=postgres bench/run.sh      # needs postgres://postgres@127.0.0.1:5432 and psql
#
# Steps: build the release binary; create a fresh database (an SQLite file in a temporary
# folder, or the PostgreSQL database `ferum_bench`, dropped first); `ferum migrate`;
# `ferum bench-seed --customers 1000 --requests 100000`; start `ferum serve` on
# 127.0.0.1:18099 without FERUM_ADMIN_* (the seeder creates the users); sign in as the seeded
# client and admin; record the idle RSS; run wrk (30 s, 16 connections, 2 threads) on
#   (a) GET  /api/v1/requests?limit=50&status=open as the client,
#   (b) the same as the admin,
#   (c) POST /api/v1/requests (bench/create.lua) as the admin;
# record the peak RSS (VmHWM) and print one Markdown table row per scenario. The server is
# stopped on exit, whatever happens.
#
# With SCENARIOS=pages (or api,pages) it measures the web pages instead (or as well), signed in
# through the sign-in form with a session cookie: (d) GET /requests?status=open as the admin,
# (e) the same as the client, (f) GET /requests/{id} of the newest request as the admin; and
# prints each page's size.
#
# Knobs (environment): SCENARIOS (api), BACKEND, CUSTOMERS (1000), REQUESTS (100000), DURATION in seconds (30),
# CONNECTIONS (16), THREADS (2), PORT (18099), PG_URL (postgres://postgres@127.0.0.1:5432),
# FERUM_BIN (a prebuilt binary: skips the build), KEEP=1 (keep the temporary folder with the
# server log and the raw wrk output). FERUM_LOG, FERUM_DB_MAX_CONNECTIONS and the other FERUM_*
# settings pass through to the server. wrk shares the machine with the server: on a small
# machine compare runs with each other, not with other hardware.

set -euo pipefail

BACKEND=${BACKEND:-sqlite}
SCENARIOS=${SCENARIOS:-api}
CUSTOMERS=${CUSTOMERS:-1000}
REQUESTS=${REQUESTS:-100000}
DURATION=${DURATION:-30}
CONNECTIONS=${CONNECTIONS:-16}
THREADS=${THREADS:-2}
PORT=${PORT:-18099}
PG_URL=${PG_URL:-postgres://postgres@127.0.0.1:5432}
PG_DB=ferum_bench

# What `ferum bench-seed` creates (src/seed.rs).
CLIENT_EMAIL=bench-client-00001@ferum.local
ADMIN_EMAIL=bench-admin@ferum.local
PASSWORD=bench-password-123

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$BENCH_DIR/.." && pwd)
BASE=http://127.0.0.1:$PORT

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

case $BACKEND in
    sqlite | postgres) ;;
    *) die "BACKEND must be sqlite or postgres, not '$BACKEND'" ;;
esac
for n in "$CUSTOMERS" "$REQUESTS" "$DURATION" "$CONNECTIONS" "$THREADS" "$PORT"; do
    [[ $n =~ ^[0-9]+$ ]] || die "'$n' is not a whole number"
done

# ---------------------------------------------------------------- tools

if ! command -v wrk >/dev/null 2>&1; then
    log "installing wrk"
    SUDO=()
    if [[ $(id -u) -ne 0 ]]; then SUDO=(sudo); fi
    "${SUDO[@]}" apt-get update
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y wrk
fi
command -v curl >/dev/null 2>&1 || die "curl is required"
if [[ $BACKEND == postgres ]]; then
    command -v psql >/dev/null 2>&1 || die "psql is required for BACKEND=postgres"
fi

# ---------------------------------------------------------------- build

if [[ -n ${FERUM_BIN:-} ]]; then
    BIN=$FERUM_BIN
else
    log "building the release binary"
    (cd "$ROOT" && cargo build --release)
    TARGET_DIR=$(cd "$ROOT" && cargo metadata --format-version 1 --no-deps |
        grep -o '"target_directory":"[^"]*"' | cut -d'"' -f4)
    BIN=$TARGET_DIR/release/ferum
fi
[[ -x $BIN ]] || die "no ferum binary at $BIN"

# ---------------------------------------------------------------- environment

WORK=$(mktemp -d "${TMPDIR:-/tmp}/ferum-bench.XXXXXX")
SERVER_PID=

cleanup() {
    local status=$?
    if [[ -n $SERVER_PID ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill -TERM "$SERVER_PID" 2>/dev/null || true
        for _ in $(seq 1 50); do
            kill -0 "$SERVER_PID" 2>/dev/null || break
            sleep 0.2
        done
        if kill -0 "$SERVER_PID" 2>/dev/null; then
            kill -KILL "$SERVER_PID" 2>/dev/null || true
        fi
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    if [[ ${KEEP:-0} == 1 || $status -ne 0 ]]; then
        log "kept $WORK (server.log, seed.txt, wrk-*.txt)"
    else
        rm -rf "$WORK"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

unset FERUM_ADMIN_EMAIL FERUM_ADMIN_PASSWORD
export FERUM_DATA_DIR=$WORK/data
mkdir -p "$FERUM_DATA_DIR"

if [[ $BACKEND == sqlite ]]; then
    export DATABASE_URL=sqlite://$FERUM_DATA_DIR/ferum.db
else
    log "recreating the PostgreSQL database $PG_DB"
    PGCONNECT_TIMEOUT=10 psql "$PG_URL/postgres" -X -q -v ON_ERROR_STOP=1 \
        -c "DROP DATABASE IF EXISTS $PG_DB WITH (FORCE)" \
        -c "CREATE DATABASE $PG_DB"
    export DATABASE_URL=$PG_URL/$PG_DB
fi

# ---------------------------------------------------------------- data

log "migrating"
timeout 300 "$BIN" migrate
log "seeding $CUSTOMERS customers and $REQUESTS requests"
seed_start=$(date +%s.%N)
timeout 1800 "$BIN" bench-seed --customers "$CUSTOMERS" --requests "$REQUESTS" | tee "$WORK/seed.txt"
seed_end=$(date +%s.%N)
SEED_SECONDS=$(awk -v a="$seed_start" -v b="$seed_end" 'BEGIN { printf "%.1f", b - a }')

# ---------------------------------------------------------------- server

if curl -s --max-time 2 -o /dev/null "$BASE/healthz"; then
    die "something already listens on 127.0.0.1:$PORT"
fi
log "starting the server on 127.0.0.1:$PORT"
# The load generator is one "user" sending thousands of requests a second: lift the per-user
# API limit, and sign the seeded admin in with a password only (no second factor to script).
FERUM_MFA_ROLES=none FERUM_API_REQUESTS_PER_MINUTE=off \
    "$BIN" serve --bind "127.0.0.1:$PORT" >"$WORK/server.log" 2>&1 &
SERVER_PID=$!

for i in $(seq 1 60); do
    if curl -fs --max-time 2 -o /dev/null "$BASE/healthz"; then break; fi
    kill -0 "$SERVER_PID" 2>/dev/null || die "the server exited; see $WORK/server.log"
    [[ $i -lt 60 ]] || die "the server did not answer within 30 s"
    sleep 0.5
done

rss_kib() { awk -v k="$1:" '$1 == k { print $2 }' "/proc/$SERVER_PID/status"; }
mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }

login() {
    local body token
    body=$(curl -fsS --max-time 30 -H 'Content-Type: application/json' \
        -d "{\"email\":\"$1\",\"password\":\"$PASSWORD\"}" "$BASE/api/v1/auth/login") ||
        die "cannot sign in as $1"
    token=$(printf '%s' "$body" | sed -n 's/.*"access_token":"\([^"]*\)".*/\1/p')
    [[ -n $token ]] || die "no access token in the login answer for $1"
    printf '%s' "$token"
}
# Idle: started, migrated, nothing served yet. Signing in runs Argon2id (19 MiB per hash),
# whose memory the allocator keeps, so the RSS after sign-in is reported separately.
sleep 3
IDLE_RSS=$(rss_kib VmRSS)
log "idle RSS: $(mib "$IDLE_RSS") MiB"
CLIENT_TOKEN=$(login "$CLIENT_EMAIL")
ADMIN_TOKEN=$(login "$ADMIN_EMAIL")
LOGIN_RSS=$(rss_kib VmRSS)
log "RSS after two sign-ins: $(mib "$LOGIN_RSS") MiB"

# ---------------------------------------------------------------- load

LIST_URL="$BASE/api/v1/requests?limit=50&status=open"
ROWS=()

# Fails early when a scenario would only measure error answers.
expect() {
    local want=$1 got
    shift
    got=$(curl -s --max-time 30 -o "$WORK/preflight.json" -w '%{http_code}' "$@") || true
    [[ $got == "$want" ]] || die "preflight got HTTP $got instead of $want: $(head -c 300 "$WORK/preflight.json")"
}

# run_wrk NAME WRK-ARGS...: runs wrk, keeps its output, appends a table row.
run_wrk() {
    local name=$1 line kv
    shift
    log "scenario $name: ${DURATION}s, $CONNECTIONS connections, $THREADS threads"
    timeout $((DURATION + 60)) wrk --latency --timeout 10s -t"$THREADS" -c"$CONNECTIONS" \
        -d"${DURATION}s" "$@" | tee "$WORK/wrk-$name.txt"
    line=$(grep '^BENCH ' "$WORK/wrk-$name.txt" | tail -n 1) || die "no BENCH line from wrk"
    local rps='' p50='' p99='' non2xx='' socket=''
    for kv in $line; do
        case $kv in
            rps=*) rps=${kv#rps=} ;;
            p50_ms=*) p50=${kv#p50_ms=} ;;
            p99_ms=*) p99=${kv#p99_ms=} ;;
            non2xx=*) non2xx=${kv#non2xx=} ;;
            socket_errors=*) socket=${kv#socket_errors=} ;;
        esac
    done
    ROWS+=("| $BACKEND | $name | $rps | $p50 | $p99 | $non2xx | $socket | $(mib "$IDLE_RSS") | $(mib "$(rss_kib VmHWM)") |")
}

if [[ ,$SCENARIOS, == *,api,* ]]; then
    expect 200 -H "Authorization: Bearer $CLIENT_TOKEN" "$LIST_URL"
    run_wrk list-open-client -s "$BENCH_DIR/report.lua" -H "Authorization: Bearer $CLIENT_TOKEN" "$LIST_URL"

    expect 200 -H "Authorization: Bearer $ADMIN_TOKEN" "$LIST_URL"
    run_wrk list-open-admin -s "$BENCH_DIR/report.lua" -H "Authorization: Bearer $ADMIN_TOKEN" "$LIST_URL"

    expect 201 -H "Authorization: Bearer $ADMIN_TOKEN" -H 'Content-Type: application/json' \
        -d '{"type":"maintenance","subject":"bench","object_id":1}' "$BASE/api/v1/requests"
    export BENCH_TOKEN=$ADMIN_TOKEN
    run_wrk create-admin -s "$BENCH_DIR/create.lua" "$BASE/api/v1/requests"
fi

# web_login EMAIL: signs in through the sign-in form; prints the session cookie.
web_login() {
    local jar=$WORK/jar-$1 pre
    curl -fsS --max-time 30 -c "$jar" -o /dev/null "$BASE/login" || die "no sign-in page"
    pre=$(awk '$6 == "ferum_pre" { print $7 }' "$jar")
    curl -fsS --max-time 30 -b "$jar" -c "$jar" -o /dev/null \
        --data-urlencode "_csrf=$pre" --data-urlencode "email=$1" \
        --data-urlencode "password=$PASSWORD" --data-urlencode "next=/" "$BASE/login" ||
        die "cannot sign in as $1 through the form"
    awk '$6 == "ferum_session" { print "ferum_session=" $7 }' "$jar"
}

PAGE_SIZES=()
if [[ ,$SCENARIOS, == *,pages,* ]]; then
    ADMIN_COOKIE=$(web_login "$ADMIN_EMAIL")
    CLIENT_COOKIE=$(web_login "$CLIENT_EMAIL")
    [[ -n $ADMIN_COOKIE && -n $CLIENT_COOKIE ]] || die "no session cookie after signing in"
    NEWEST=$(curl -fsS -H "Authorization: Bearer $ADMIN_TOKEN" "$BASE/api/v1/requests?limit=1" |
        python3 -c 'import json, sys; print(json.load(sys.stdin)["items"][0]["id"])')
    [[ -n $NEWEST ]] || die "no request to show"
    PAGE_LIST="$BASE/requests?status=open"
    PAGE_ONE="$BASE/requests/$NEWEST"
    for u in "$PAGE_LIST" "$PAGE_ONE"; do
        expect 200 -H "Cookie: $ADMIN_COOKIE" "$u"
        PAGE_SIZES+=("$u: $(curl -s -H "Cookie: $ADMIN_COOKIE" -o /dev/null -w '%{size_download}' "$u") bytes")
    done
    run_wrk page-list-admin -s "$BENCH_DIR/report.lua" -H "Cookie: $ADMIN_COOKIE" "$PAGE_LIST"
    expect 200 -H "Cookie: $CLIENT_COOKIE" "$PAGE_LIST"
    run_wrk page-list-client -s "$BENCH_DIR/report.lua" -H "Cookie: $CLIENT_COOKIE" "$PAGE_LIST"
    run_wrk page-request-admin -s "$BENCH_DIR/report.lua" -H "Cookie: $ADMIN_COOKIE" "$PAGE_ONE"
fi

PEAK_RSS=$(rss_kib VmHWM)

# ---------------------------------------------------------------- report

cat <<EOF

## Ferum benchmark: $BACKEND, $(date -u +%Y-%m-%dT%H:%M:%SZ)

- commit $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)$(git -C "$ROOT" diff --quiet HEAD 2>/dev/null || echo ' (with local changes)'), $("$BIN" --version), $(nproc) CPUs
- data: $CUSTOMERS customers, $REQUESTS requests, seeded in $SEED_SECONDS s
- wrk: ${DURATION} s, $CONNECTIONS connections, $THREADS threads, on the same machine
- RSS: idle $(mib "$IDLE_RSS") MiB, after two sign-ins $(mib "$LOGIN_RSS") MiB, peak (VmHWM) $(mib "$PEAK_RSS") MiB

| backend | scenario | req/s | p50 ms | p99 ms | non-2xx | socket errors | idle RSS MiB | peak RSS MiB so far |
|---|---|---:|---:|---:|---:|---:|---:|---:|
EOF
printf '%s\n' "${ROWS[@]}"
if [[ ${#PAGE_SIZES[@]} -gt 0 ]]; then
    echo
    printf -- '- page size: %s\n' "${PAGE_SIZES[@]}"
fi
