#!/usr/bin/env bash
# Tests deploy/deploy.sh against a fake `docker` that logs every call and fails on cue, by the
# exact sequence of commands in each case, and deploy/changelog-section.sh on a sample file.
# Exits non-zero on the first mismatch.
#
#   bash deploy/test-deploy.sh
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

NEW=ghcr.io/acme/ferum:1.4.0
ARCHIVE=/var/backups/ferum/ferum-20261127T030000Z.tar.age
failures=0
passed=0

# The fake: each call is one line "IMAGE|ARGS" (IMAGE: FERUM_IMAGE, for compose calls only).
# FAKE_FAIL lists the steps that fail, comma-separated: pull, backup, migrate (with the new
# image), healthcheck (while the new image runs), restore. FAKE_FIRST=1: there is no app container yet.
mkdir -p "$WORK/bin"
cat >"$WORK/bin/docker" <<'FAKE'
#!/usr/bin/env bash
set -euo pipefail
image=
[ "${1:-}" = compose ] && image=${FERUM_IMAGE:-}
printf '%s|%s\n' "$image" "$*" >>"$FAKE_LOG"
fails() { case ",${FAKE_FAIL:-}," in *",$1,"*) return 0 ;; *) return 1 ;; esac; }
if [ "${1:-}" = compose ]; then
    # compose --project-name P --env-file F SUBCOMMAND...
    [ "$2" = --project-name ] && [ "$4" = --env-file ] || { echo "fake docker: bad compose flags: $*" >&2; exit 99; }
    shift 5
    case "$*" in
        "ps -a -q app") [ -n "${FAKE_FIRST:-}" ] || echo c0ffee ;;
        "stop app worker") ;;
        "run --rm -T app backup")
            fails backup && exit 1
            echo "backing up the database and 12 files"
            echo "$FAKE_ARCHIVE" ;;
        "run --rm -T app backup verify $FAKE_ARCHIVE") echo "archive OK" ;;
        "run --rm -T app migrate")
            if fails migrate && [ "$FERUM_IMAGE" = "$FAKE_NEW" ]; then exit 1; fi
            echo "2 migrations applied" ;;
        "run --rm -T app restore --replace $FAKE_ARCHIVE") fails restore && exit 1; echo restored ;;
        "up -d --no-build app worker") echo "$FERUM_IMAGE" >"$FAKE_STATE/running" ;;
        "exec -T app ferum healthcheck")
            running=$(cat "$FAKE_STATE/running" 2>/dev/null || echo previous)
            if fails healthcheck && [ "$running" = "$FAKE_NEW" ]; then exit 1; fi ;;
        "exec -T app ferum backup") echo "backing up"; echo /var/backups/ferum/now.tar.age ;;
        *) echo "fake docker: unexpected compose $*" >&2; exit 99 ;;
    esac
    exit 0
fi
case "$*" in
    "pull $FAKE_NEW") fails pull && exit 1; echo "Status: Downloaded newer image for $FAKE_NEW" ;;
    "inspect --format {{.Image}} c0ffee") echo sha256:0ld ;;
    "image tag sha256:0ld ferum-rollback:ferum") ;;
    "image inspect ferum-rollback:ferum") echo '[{}]' ;;
    *) echo "fake docker: unexpected $*" >&2; exit 99 ;;
esac
FAKE
chmod +x "$WORK/bin/docker"

# A checkout of its own per case: deploy.sh writes the env file and .deploy/.
new_case() {
    CASE=$WORK/case-$1
    mkdir -p "$CASE/state"
    touch "$CASE/docker-compose.yml"
    printf 'POSTGRES_PASSWORD=x\nFERUM_IMAGE=ghcr.io/acme/ferum:1.3.0\n' >"$CASE/.env"
}

# run_deploy EXPECTED_STATUS [env assignments...] -- [deploy.sh arguments...]
run_deploy() {
    local expected=$1 status=0
    shift
    local envs=()
    while [ "$1" != -- ]; do envs+=("$1"); shift; done
    shift
    (cd "$CASE" && env -u FERUM_IMAGE -u FERUM_PROJECT -u FERUM_ENV_FILE \
        PATH="$WORK/bin:$PATH" FAKE_LOG="$CASE/calls" FAKE_STATE="$CASE/state" \
        FAKE_NEW="$NEW" FAKE_ARCHIVE="$ARCHIVE" DEPLOY_READY_ATTEMPTS=3 DEPLOY_READY_INTERVAL=0 \
        "${envs[@]}" bash "$ROOT/deploy/deploy.sh" "$@" >"$CASE/out" 2>&1) || status=$?
    if [ "$status" != "$expected" ]; then
        echo "FAIL $CASE_NAME: exit status $status, expected $expected; output:" >&2
        sed 's/^/    /' "$CASE/out" >&2
        failures=$((failures + 1))
        return 1
    fi
}

# expect_calls: compares the logged calls with the lines on standard input.
expect_calls() {
    if ! diff -u - "$CASE/calls" >"$CASE/diff"; then
        echo "FAIL $CASE_NAME: docker calls differ (- expected, + actual):" >&2
        sed 's/^/    /' "$CASE/diff" >&2
        failures=$((failures + 1))
        return 1
    fi
}

expect_file() {
    local file=$1 want=$2
    if [ "$(cat "$CASE/$file" 2>/dev/null)" != "$want" ]; then
        echo "FAIL $CASE_NAME: $file is '$(cat "$CASE/$file" 2>/dev/null)', expected '$want'" >&2
        failures=$((failures + 1))
        return 1
    fi
}

expect_output() {
    if ! grep -qF -- "$1" "$CASE/out"; then
        echo "FAIL $CASE_NAME: output lacks '$1'; output:" >&2
        sed 's/^/    /' "$CASE/out" >&2
        failures=$((failures + 1))
        return 1
    fi
}

ok() {
    echo "ok   $CASE_NAME"
    passed=$((passed + 1))
}

C="compose --project-name ferum --env-file .env"
R=ferum-rollback:ferum

CASE_NAME="a deployment that works"
new_case ok
run_deploy 0 -- "$NEW" && expect_calls <<EOF && expect_file .env "$(printf 'POSTGRES_PASSWORD=x\nFERUM_IMAGE=%s' "$NEW")" && expect_file .deploy/ferum.archive "$ARCHIVE" && expect_output "deployed $NEW" && ok
$NEW|$C ps -a -q app
|inspect --format {{.Image}} c0ffee
|image tag sha256:0ld $R
|pull $NEW
$R|$C stop app worker
$R|$C run --rm -T app backup
$R|$C run --rm -T app backup verify $ARCHIVE
$NEW|$C run --rm -T app migrate
$NEW|$C up -d --no-build app worker
$NEW|$C exec -T app ferum healthcheck
EOF

CASE_NAME="a failing migration rolls back and restores the backup"
new_case migrate
run_deploy 1 FAKE_FAIL=migrate -- "$NEW" && expect_calls <<EOF && expect_file .env "$(printf 'POSTGRES_PASSWORD=x\nFERUM_IMAGE=%s' "$R")" && expect_output "Rolled back" && expect_output "the migration failed" && ok
$NEW|$C ps -a -q app
|inspect --format {{.Image}} c0ffee
|image tag sha256:0ld $R
|pull $NEW
$R|$C stop app worker
$R|$C run --rm -T app backup
$R|$C run --rm -T app backup verify $ARCHIVE
$NEW|$C run --rm -T app migrate
$R|$C stop app worker
$R|$C run --rm -T app restore --replace $ARCHIVE
$R|$C up -d --no-build app worker
$R|$C exec -T app ferum healthcheck
EOF

CASE_NAME="a new version that never gets ready rolls back"
new_case ready
run_deploy 1 FAKE_FAIL=healthcheck -- --project ferum --env-file .env "$NEW" && expect_calls <<EOF && expect_output "did not become ready" && expect_output "Rolled back" && ok
$NEW|$C ps -a -q app
|inspect --format {{.Image}} c0ffee
|image tag sha256:0ld $R
|pull $NEW
$R|$C stop app worker
$R|$C run --rm -T app backup
$R|$C run --rm -T app backup verify $ARCHIVE
$NEW|$C run --rm -T app migrate
$NEW|$C up -d --no-build app worker
$NEW|$C exec -T app ferum healthcheck
$NEW|$C exec -T app ferum healthcheck
$NEW|$C exec -T app ferum healthcheck
$R|$C stop app worker
$R|$C run --rm -T app restore --replace $ARCHIVE
$R|$C up -d --no-build app worker
$R|$C exec -T app ferum healthcheck
EOF

CASE_NAME="a restore that fails during the rollback needs a person"
new_case restore
run_deploy 3 FAKE_FAIL=migrate,restore -- "$NEW" && expect_calls <<EOF && expect_output "restoring $ARCHIVE failed too" && ok
$NEW|$C ps -a -q app
|inspect --format {{.Image}} c0ffee
|image tag sha256:0ld $R
|pull $NEW
$R|$C stop app worker
$R|$C run --rm -T app backup
$R|$C run --rm -T app backup verify $ARCHIVE
$NEW|$C run --rm -T app migrate
$R|$C stop app worker
$R|$C run --rm -T app restore --replace $ARCHIVE
EOF

CASE_NAME="an image that cannot be pulled changes nothing"
new_case pull
run_deploy 1 FAKE_FAIL=pull -- "$NEW" && expect_calls <<EOF && expect_file .env "$(printf 'POSTGRES_PASSWORD=x\nFERUM_IMAGE=ghcr.io/acme/ferum:1.3.0')" && expect_output "nothing was changed" && ok
$NEW|$C ps -a -q app
|inspect --format {{.Image}} c0ffee
|image tag sha256:0ld $R
|pull $NEW
EOF

CASE_NAME="a failing backup starts the previous version again and changes nothing"
new_case backup
run_deploy 1 FAKE_FAIL=backup -- "$NEW" && expect_calls <<EOF && expect_output "the backup failed; nothing was changed" && ok
$NEW|$C ps -a -q app
|inspect --format {{.Image}} c0ffee
|image tag sha256:0ld $R
|pull $NEW
$R|$C stop app worker
$R|$C run --rm -T app backup
$R|$C up -d --no-build app worker
$R|$C exec -T app ferum healthcheck
EOF

CASE_NAME="a first deployment has nothing to back up"
new_case first
run_deploy 0 FAKE_FIRST=1 -- "$NEW" && expect_calls <<EOF && expect_output "first deployment" && ok
$NEW|$C ps -a -q app
|pull $NEW
$NEW|$C run --rm -T app migrate
$NEW|$C up -d --no-build app worker
$NEW|$C exec -T app ferum healthcheck
EOF

CASE_NAME="a staging project uses its own project name and env file"
new_case staging
cp "$CASE/.env" "$CASE/.env.staging"
run_deploy 0 FAKE_FIRST=1 -- --project ferum-staging --env-file .env.staging "$NEW" && expect_calls <<EOF && expect_file .env.staging "$(printf 'POSTGRES_PASSWORD=x\nFERUM_IMAGE=%s' "$NEW")" && expect_file .env "$(printf 'POSTGRES_PASSWORD=x\nFERUM_IMAGE=ghcr.io/acme/ferum:1.3.0')" && ok
$NEW|compose --project-name ferum-staging --env-file .env.staging ps -a -q app
|pull $NEW
$NEW|compose --project-name ferum-staging --env-file .env.staging run --rm -T app migrate
$NEW|compose --project-name ferum-staging --env-file .env.staging up -d --no-build app worker
$NEW|compose --project-name ferum-staging --env-file .env.staging exec -T app ferum healthcheck
EOF

CASE_NAME="--rollback after a deployment restores its backup under the previous image"
new_case rollback
run_deploy 0 -- "$NEW" && : >"$CASE/calls" && run_deploy 0 -- --rollback && expect_calls <<EOF && expect_file .env "$(printf 'POSTGRES_PASSWORD=x\nFERUM_IMAGE=%s' "$R")" && expect_output "rolled back" && ok
|image inspect $R
$R|$C exec -T app ferum backup
$R|$C stop app worker
$R|$C run --rm -T app restore --replace $ARCHIVE
$R|$C up -d --no-build app worker
$R|$C exec -T app ferum healthcheck
EOF

CASE_NAME="--rollback refuses twice (the backup is spent)"
run_deploy 2 -- --rollback && expect_output "nothing to roll back" && ok

CASE_NAME="no image is a usage error"
new_case usage
run_deploy 2 -- && ok

# changelog-section.sh
cat >"$WORK/CHANGELOG.md" <<'EOF'
# Changelog

## [Unreleased]

- in progress

## [1.10.0] - 2026-12-01

### Added

- ten


## [1.1.0] - 2026-11-28

### Fixed
- one-one

[1.10.0]: https://example.com/compare/v1.1.0...v1.10.0
[1.1.0]: https://example.com/releases/v1.1.0
EOF
check_notes() {
    CASE_NAME="changelog-section.sh $1"
    local got status=0
    got=$(bash "$ROOT/deploy/changelog-section.sh" "$1" "$WORK/CHANGELOG.md" 2>/dev/null) || status=$?
    if [ "$status" != "$2" ] || [ "$got" != "$3" ]; then
        echo "FAIL $CASE_NAME: status $status (expected $2), notes:" >&2
        printf '%s\n' "$got" | sed 's/^/    /' >&2
        failures=$((failures + 1))
        return 0
    fi
    ok
}
check_notes v1.10.0 0 "$(printf '### Added\n\n- ten')"
check_notes 1.1.0 0 "$(printf '### Fixed\n- one-one')"
check_notes 1.1 1 ""
check_notes 2.0.0 1 ""

echo "deploy: $passed passed, $failures failed"
[ "$failures" = 0 ]
