#!/usr/bin/env bash
# Deploys one ferum image to one compose project on this server, or rolls the last deployment
# back. Run it on the server, in the checkout (the folder with docker-compose.yml):
#
#   deploy/deploy.sh [--project NAME] [--env-file FILE] IMAGE
#   deploy/deploy.sh [--project NAME] [--env-file FILE] --rollback
#
#   --project   compose project (default $FERUM_PROJECT, else "ferum"; staging: ferum-staging)
#   --env-file  the project's env file (default $FERUM_ENV_FILE, else .env)
#   IMAGE       e.g. ghcr.io/acme/ferum:1.4.0 (default $FERUM_IMAGE)
#
# A deployment: tag the running image as ferum-rollback:PROJECT → pull IMAGE → stop the app →
# back up with the previous image (`ferum backup`; its last line of output is the archive) and
# verify the archive → `ferum migrate` with IMAGE → start the app on IMAGE → wait until
# `ferum healthcheck` (/readyz) passes. The app is stopped from the backup on, so the backup
# holds every write that a rollback would restore. If the migration, the start or the
# readiness fails: stop the app, restore the archive with the previous image
# (`ferum restore --replace`), start the previous image, wait until it is ready.
#
# On success FERUM_IMAGE=IMAGE is written into the env file, so a later `docker compose up -d`
# by hand keeps this version; .deploy/PROJECT.archive keeps the backup for --rollback, and
# .deploy/PROJECT.history a line per deployment.
#
# --rollback undoes the last successful deployment: it backs up the current state (kept, in
# case), then restores the archive taken before that deployment under the previous image.
# Writes made since that deployment are lost from the running site.
#
# Exit status: 0 deployed (or rolled back on request); 1 the deployment failed and the previous
# version runs again with its data; 2 wrong usage; 3 the rollback failed too: a person is needed.
#
# Tuning (environment): DEPLOY_READY_ATTEMPTS (60) and DEPLOY_READY_INTERVAL (2 s) bound the
# readiness wait; DEPLOY_STATE_DIR (.deploy) holds the records.
set -euo pipefail

PROJECT=${FERUM_PROJECT:-ferum}
ENV_FILE=${FERUM_ENV_FILE:-.env}
IMAGE=${FERUM_IMAGE:-}
MODE=deploy
READY_ATTEMPTS=${DEPLOY_READY_ATTEMPTS:-60}
READY_INTERVAL=${DEPLOY_READY_INTERVAL:-2}
STATE_DIR=${DEPLOY_STATE_DIR:-.deploy}

usage() {
    sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2
    exit 2
}

while [ $# -gt 0 ]; do
    case $1 in
        --project) PROJECT=${2:?--project needs a name}; shift 2 ;;
        --project=*) PROJECT=${1#*=}; shift ;;
        --env-file) ENV_FILE=${2:?--env-file needs a file}; shift 2 ;;
        --env-file=*) ENV_FILE=${1#*=}; shift ;;
        --rollback) MODE=rollback; shift ;;
        -h | --help) usage ;;
        -*) echo "deploy.sh: unknown option $1" >&2; usage ;;
        *) IMAGE=$1; shift ;;
    esac
done

log() { printf '%s [deploy %s] %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$PROJECT" "$*" >&2; }
fail() {
    log "FAILED: $2"
    exit "$1"
}

ROLLBACK_IMAGE=ferum-rollback:$PROJECT
ARCHIVE=
PREVIOUS=

# docker compose for this project, with the app on the image given as the first argument.
dc() {
    local image=$1
    shift
    FERUM_IMAGE=$image FERUM_ENV_FILE=$ENV_FILE \
        docker compose --project-name "$PROJECT" --env-file "$ENV_FILE" "$@"
}

wait_ready() {
    local image=$1 i
    for ((i = 1; i <= READY_ATTEMPTS; i++)); do
        if dc "$image" exec -T app ferum healthcheck >/dev/null 2>&1; then
            log "ready (check $i)"
            return 0
        fi
        sleep "$READY_INTERVAL"
    done
    log "not ready after $READY_ATTEMPTS checks"
    return 1
}

set_env_image() {
    if grep -q '^FERUM_IMAGE=' "$ENV_FILE"; then
        sed -i "s|^FERUM_IMAGE=.*|FERUM_IMAGE=$1|" "$ENV_FILE"
    else
        printf 'FERUM_IMAGE=%s\n' "$1" >>"$ENV_FILE"
    fi
}

record() {
    printf '%s %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$*" >>"$STATE_DIR/$PROJECT.history"
}

# Puts the previous image back with the data of $ARCHIVE and waits until it is ready;
# exits 3 if any of that fails.
restore_previous() {
    local reason=$1
    log "$reason; rolling back to $ROLLBACK_IMAGE with the backup $ARCHIVE"
    dc "$ROLLBACK_IMAGE" stop app worker || true
    log "restoring $ARCHIVE"
    dc "$ROLLBACK_IMAGE" run --rm -T app restore --replace "$ARCHIVE" ||
        fail 3 "$reason, and restoring $ARCHIVE failed too; the app is stopped. Restore by hand (DEPLOY.md, Rollback)."
    log "starting the previous image"
    dc "$ROLLBACK_IMAGE" up -d --no-build app worker ||
        fail 3 "$reason, and the previous image did not start; the data is restored. See docker compose logs app."
    wait_ready "$ROLLBACK_IMAGE" ||
        fail 3 "$reason, and the previous image is not ready either; the data is restored. See docker compose logs app."
    set_env_image "$ROLLBACK_IMAGE"
    # The archive is spent: a later --rollback must not restore it a second time.
    rm -f "$STATE_DIR/$PROJECT.archive"
    record "rolled back to $PREVIOUS with $ARCHIVE ($reason)"
}

# Backs up with the given image while the app is stopped, verifies the archive, sets $ARCHIVE.
backup() {
    local image=$1 out
    log "backing up"
    out=$(dc "$image" run --rm -T app backup) || return 1
    printf '%s\n' "$out" >&2
    ARCHIVE=$(printf '%s\n' "$out" | tail -n 1)
    [ -n "$ARCHIVE" ] || return 1
    log "verifying $ARCHIVE"
    dc "$image" run --rm -T app backup verify "$ARCHIVE" >&2 || return 1
}

# The image of the app container, running or stopped, as an image id; empty if there is none.
current_image() {
    local cid
    cid=$(dc "$1" ps -a -q app | head -n 1)
    [ -n "$cid" ] || return 0
    docker inspect --format '{{.Image}}' "$cid"
}

deploy() {
    [ -n "$IMAGE" ] || usage
    log "deploying $IMAGE"
    PREVIOUS=$(current_image "$IMAGE") ||
        fail 2 "docker compose cannot read project $PROJECT (is $ENV_FILE complete?); nothing was changed"
    if [ -n "$PREVIOUS" ]; then
        docker image tag "$PREVIOUS" "$ROLLBACK_IMAGE" ||
            fail 1 "cannot tag the running image $PREVIOUS; nothing was changed"
        log "previous image $PREVIOUS kept as $ROLLBACK_IMAGE"
    else
        log "no app container yet: a first deployment, with nothing to back up or roll back to"
        rm -f "$STATE_DIR/$PROJECT.archive"
    fi

    # `docker pull`, not `docker compose pull`: compose only warns when it cannot pull the image
    # of a service that has a `build:` section, and a later `run` would then build it here.
    log "pulling $IMAGE"
    docker pull "$IMAGE" || fail 1 "cannot pull $IMAGE; nothing was changed"

    if [ -n "$PREVIOUS" ]; then
        log "stopping the app"
        dc "$ROLLBACK_IMAGE" stop app worker || fail 1 "cannot stop the app; nothing was changed"
        if ! backup "$ROLLBACK_IMAGE"; then
            log "the backup failed; starting the previous version again"
            if ! dc "$ROLLBACK_IMAGE" up -d --no-build app worker || ! wait_ready "$ROLLBACK_IMAGE"; then
                fail 3 "the backup failed, and the previous version did not start again"
            fi
            fail 1 "the backup failed; nothing was changed and the previous version runs again"
        fi
        printf '%s\n' "$ARCHIVE" >"$STATE_DIR/$PROJECT.archive"
    fi

    local failure=
    log "migrating"
    if ! dc "$IMAGE" run --rm -T app migrate; then
        failure="the migration failed"
    else
        log "starting $IMAGE"
        if ! dc "$IMAGE" up -d --no-build app worker; then
            failure="$IMAGE did not start"
        elif ! wait_ready "$IMAGE"; then
            failure="$IMAGE did not become ready"
        fi
    fi
    if [ -n "$failure" ]; then
        if [ -z "$PREVIOUS" ]; then
            dc "$IMAGE" stop app worker || true
            record "first deployment of $IMAGE failed ($failure)"
            fail 1 "$failure; this was the first deployment, so there is nothing to roll back to. The app is stopped; see docker compose logs app."
        fi
        restore_previous "$failure"
        fail 1 "$failure. Rolled back: the previous version runs with the data of $ARCHIVE."
    fi

    set_env_image "$IMAGE"
    record "deployed $IMAGE over ${PREVIOUS:-nothing} with backup ${ARCHIVE:-none}"
    log "deployed $IMAGE"
}

rollback_last() {
    [ -s "$STATE_DIR/$PROJECT.archive" ] ||
        fail 2 "no backup recorded in $STATE_DIR/$PROJECT.archive: nothing to roll back"
    docker image inspect "$ROLLBACK_IMAGE" >/dev/null ||
        fail 2 "no previous image $ROLLBACK_IMAGE on this host: nothing to roll back to"
    ARCHIVE=$(cat "$STATE_DIR/$PROJECT.archive")
    PREVIOUS=$ROLLBACK_IMAGE
    log "rolling back to $ROLLBACK_IMAGE with the backup $ARCHIVE"
    log "backing up the current state first (kept in case it is needed)"
    local out
    out=$(dc "$ROLLBACK_IMAGE" exec -T app ferum backup) ||
        fail 2 "cannot back up the current state (is the app running?); nothing was changed"
    printf '%s\n' "$out" >&2
    record "before rollback: current state saved in $(printf '%s\n' "$out" | tail -n 1)"
    restore_previous "rollback requested"
    log "rolled back: the previous version runs with the data of $ARCHIVE"
}

[ -f docker-compose.yml ] || fail 2 "run this in the checkout, next to docker-compose.yml"
[ -f "$ENV_FILE" ] || fail 2 "no env file $ENV_FILE"
mkdir -p "$STATE_DIR"
[ -f "$STATE_DIR/.gitignore" ] || printf '*\n' >"$STATE_DIR/.gitignore"

# One deployment per project at a time.
exec 9>"$STATE_DIR/$PROJECT.lock"
flock -n 9 || fail 2 "another deployment of $PROJECT is running"

case $MODE in
    deploy) deploy ;;
    rollback) rollback_last ;;
esac
