#!/usr/bin/env bash
# Delivery rate of `ferum worker` to a local SMTP sink, everything on 127.0.0.1.
#
#   BACKEND=sqlite   bench/worker.sh      # default
#   BACKEND=postgres bench/worker.sh      # needs postgres://postgres@127.0.0.1:5432 and psql
#
# Steps: build the release binary (or take FERUM_BIN); create a fresh site (`ferum site init`
# on an SQLite file in a temporary folder, or on the PostgreSQL database `ferum_bench_worker`,
# dropped first); queue MESSAGES e-mails in the outbox straight in the database; start the
# counting SMTP sink (bench/smtp_sink.py, standard-library Python) and WORKERS `ferum worker`
# processes pointed at it; time from their start until every message is delivered; print one
# Markdown table row. Everything started is stopped on exit, whatever happens.
#
# Knobs: BACKEND, MESSAGES (20000), WORKERS (1; more than one only on PostgreSQL), SMTP_PORT
# (18125), PG_URL (postgres://postgres@127.0.0.1:5432), FERUM_BIN, KEEP=1 (keep the folder).

set -euo pipefail

BACKEND=${BACKEND:-sqlite}
MESSAGES=${MESSAGES:-20000}
WORKERS=${WORKERS:-1}
SMTP_PORT=${SMTP_PORT:-18125}
PG_URL=${PG_URL:-postgres://postgres@127.0.0.1:5432}
PG_DB=ferum_bench_worker

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$BENCH_DIR/.." && pwd)

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

case $BACKEND in
    sqlite | postgres) ;;
    *) die "BACKEND must be sqlite or postgres, not '$BACKEND'" ;;
esac
for n in "$MESSAGES" "$WORKERS" "$SMTP_PORT"; do
    [[ $n =~ ^[0-9]+$ ]] || die "'$n' is not a whole number"
done
[ "$BACKEND" = postgres ] || [ "$WORKERS" = 1 ] || die "several workers need BACKEND=postgres"

if [ -z "${FERUM_BIN:-}" ]; then
    log "building the release binary"
    (cd "$ROOT" && cargo build --release --quiet)
    FERUM_BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/ferum"
fi
[ -x "$FERUM_BIN" ] || die "no ferum binary at $FERUM_BIN"

WORK=$(mktemp -d)
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    if [ "${KEEP:-}" = 1 ]; then log "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

export FERUM_DATA_DIR="$WORK/data" FERUM_LOG=warn FERUM_ADMIN_PASSWORD=bench-password-123
if [ "$BACKEND" = postgres ]; then
    psql -q "$PG_URL/postgres" -c "DROP DATABASE IF EXISTS $PG_DB WITH (FORCE)" -c "CREATE DATABASE $PG_DB"
    export DATABASE_URL="$PG_URL/$PG_DB"
else
    export DATABASE_URL="sqlite://$WORK/data/ferum.db"
fi
"$FERUM_BIN" site init >/dev/null

log "queueing $MESSAGES e-mails"
NOW=$(date -u +%Y-%m-%dT%H:%M:%S.000000Z)
ROW="'email', '{\"event_id\":0,\"to\":\"user' || g || '@example.ru\",\"subject\":\"Заявка\",\"text\":\"Текст\",\"link\":null}', 'bench:' || g, 'pending', '$NOW', '$NOW'"
COLUMNS="kind, payload, dedup_key, status, created_at, next_attempt_at"
if [ "$BACKEND" = postgres ]; then
    psql -q "$DATABASE_URL" -c "INSERT INTO outbox ($COLUMNS) SELECT $ROW FROM generate_series(1, $MESSAGES) g"
    delivered() { psql -qtA "$DATABASE_URL" -c "SELECT COUNT(*) FROM outbox WHERE status = 'delivered'"; }
else
    python3 - "$WORK/data/ferum.db" <<EOF
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
db.execute("""WITH RECURSIVE s(g) AS (SELECT 1 UNION ALL SELECT g + 1 FROM s WHERE g < $MESSAGES)
              INSERT INTO outbox ($COLUMNS) SELECT $ROW FROM s""")
db.commit()
EOF
    delivered() {
        python3 -c "import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute(\"SELECT COUNT(*) FROM outbox WHERE status = 'delivered'\").fetchone()[0])" "$WORK/data/ferum.db"
    }
fi

python3 "$BENCH_DIR/smtp_sink.py" "$SMTP_PORT" &
PIDS+=($!)
sleep 0.5

log "starting $WORKERS worker(s)"
START=$(date +%s.%N)
for i in $(seq 1 "$WORKERS"); do
    FERUM_SMTP_URL="smtp://127.0.0.1:$SMTP_PORT?tls=off" FERUM_MAIL_FROM='Ferum <noreply@example.ru>' \
        "$FERUM_BIN" worker >"$WORK/worker-$i.log" 2>&1 &
    PIDS+=($!)
done
while :; do
    n=$(delivered)
    [ "$n" -ge "$MESSAGES" ] && break
    sleep 0.2
done
END=$(date +%s.%N)
SECONDS_TAKEN=$(python3 -c "print(f'{$END - $START:.2f}')")
RATE=$(python3 -c "print(round($MESSAGES / ($END - $START)))")
printf '| %s | %s | %s | %s | %s |\n' "$BACKEND" "$WORKERS" "$MESSAGES" "$SECONDS_TAKEN" "$RATE"
