#!/usr/bin/env bash
# Times backup, verify and restore of a seeded site, everything local.
#
#   bench/backup.sh                 # SQLite site, restored into SQLite and into PostgreSQL
#
# Steps: build the release binary (or use FERUM_BIN); seed an SQLite site with
# `ferum bench-seed` (CUSTOMERS, REQUESTS) and put FILES files of FILE_KB KiB in its files
# folder; then time `ferum backup`, `ferum backup verify`, `ferum restore` into a new SQLite
# database and into the new PostgreSQL database `ferum_bench_restore` (dropped first), each
# with its peak memory (GNU time, installed from Debian's `time` package when missing). Prints
# one Markdown table row per step. Everything it creates is removed on exit.
#
# Knobs: CUSTOMERS (1000), REQUESTS (100000), FILES (200), FILE_KB (256),
# PG_URL (postgres://postgres@127.0.0.1:5432), FERUM_BIN, KEEP=1.
set -euo pipefail
cd "$(dirname "$0")/.."

CUSTOMERS=${CUSTOMERS:-1000}
REQUESTS=${REQUESTS:-100000}
FILES=${FILES:-200}
FILE_KB=${FILE_KB:-256}
PG_URL=${PG_URL:-postgres://postgres@127.0.0.1:5432}
PG_DB=ferum_bench_restore

if [ -z "${FERUM_BIN:-}" ]; then
    cargo build --release --locked --quiet
    FERUM_BIN="${CARGO_TARGET_DIR:-target}/release/ferum"
fi
if ! command -v /usr/bin/time >/dev/null 2>&1; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq time >/dev/null
fi

WORK=$(mktemp -d)
cleanup() {
    psql "$PG_URL/postgres" -qc "DROP DATABASE IF EXISTS $PG_DB" >/dev/null 2>&1 || true
    [ -n "${KEEP:-}" ] && echo "kept $WORK" || rm -rf "$WORK"
}
trap cleanup EXIT

site() { # site NAME DATABASE_URL command… : the command against that site's settings
    local name=$1 url=$2
    shift 2
    env DATABASE_URL="$url" FERUM_DATA_DIR="$WORK/$name" FERUM_LOG=warn "$@"
}

timed() { # timed LABEL command… : one table row with wall time and peak RSS
    local label=$1
    shift
    "$@" >"$WORK/out" 2>"$WORK/err" || {
        cat "$WORK/out" "$WORK/err" >&2
        exit 1
    }
    read -r secs kib <"$WORK/time"
    printf '| %s | %s | %s |\n' "$label" "$secs" "$((kib / 1024))"
}

mkdir -p "$WORK/src/files/photos"
site src "sqlite://$WORK/src/ferum.db" "$FERUM_BIN" migrate >/dev/null
site src "sqlite://$WORK/src/ferum.db" "$FERUM_BIN" bench-seed \
    --customers "$CUSTOMERS" --requests "$REQUESTS" >/dev/null
# As `serve` would on first start: the data key, and personal data encrypted under it.
site src "sqlite://$WORK/src/ferum.db" "$FERUM_BIN" site init >/dev/null
for i in $(seq 1 "$FILES"); do
    head -c "$((FILE_KB * 1024))" /dev/urandom >"$WORK/src/files/photos/$i.jpg"
done
db_size=$(du -k "$WORK/src/ferum.db" | cut -f1)
psql "$PG_URL/postgres" -qc "DROP DATABASE IF EXISTS $PG_DB" >/dev/null
psql "$PG_URL/postgres" -qc "CREATE DATABASE $PG_DB" >/dev/null

echo "site: $CUSTOMERS customers, $REQUESTS requests, SQLite file $((db_size / 1024)) MiB; $FILES files of $FILE_KB KiB"
echo
echo "| step | seconds | peak RSS MiB |"
echo "|---|---|---|"
timed "backup (SQLite)" site src "sqlite://$WORK/src/ferum.db" /usr/bin/time -f "%e %M" -o "$WORK/time" "$FERUM_BIN" backup --to "$WORK/backups"
archive=$(tail -n 1 "$WORK/out")
timed "backup verify" site src "sqlite://$WORK/src/ferum.db" /usr/bin/time -f "%e %M" -o "$WORK/time" "$FERUM_BIN" backup verify "$archive"
cp "$WORK/src/data.key" "$WORK/data.key"
mkdir -p "$WORK/to-sqlite" "$WORK/to-pg"
cp "$WORK/data.key" "$WORK/to-sqlite/" && cp "$WORK/data.key" "$WORK/to-pg/"
timed "restore → SQLite" site to-sqlite "sqlite://$WORK/to-sqlite/ferum.db" /usr/bin/time -f "%e %M" -o "$WORK/time" "$FERUM_BIN" restore "$archive"
timed "restore → PostgreSQL" site to-pg "$PG_URL/$PG_DB" /usr/bin/time -f "%e %M" -o "$WORK/time" "$FERUM_BIN" restore "$archive"
echo
echo "archive: $(du -h "$archive" | cut -f1) ($(basename "$archive"))"
