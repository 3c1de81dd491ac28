# Shared by the CI scripts that start a ferum and install packages (sourced, not run):
# a temporary folder $WORK, removed on exit together with the server whose pid is in $SERVER,
# wait_until_up for that server, and as_root for package installs.
# shellcheck shell=bash

WORK=$(mktemp -d)
SERVER=
cleanup() {
    if [ -n "$SERVER" ]; then
        kill "$SERVER" 2>/dev/null || true
        wait "$SERVER" 2>/dev/null || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT

as_root() {
    if [ "$(id -u)" = 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        echo "error: installing needs root or sudo: $*" >&2
        return 1
    fi
}

# Waits (up to a minute) for the server started as $SERVER to answer BASE/healthz; if it
# does not, or stops, prints its log ($WORK/server.log) and exits.
wait_until_up() {
    local base=$1
    for _ in $(seq 1 120); do
        if curl -fs -o /dev/null "$base/healthz"; then return 0; fi
        kill -0 "$SERVER" 2>/dev/null || break
        sleep 0.5
    done
    echo "error: ferum did not answer $base/healthz; its log:" >&2
    cat "$WORK/server.log" >&2
    exit 1
}
