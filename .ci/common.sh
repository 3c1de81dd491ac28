# Shared by the CI scripts that start a ferum and install packages (sourced, not run):
# a temporary folder $WORK, removed on exit together with the server whose pid is in $SERVER,
# and as_root for package installs.
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
