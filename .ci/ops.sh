#!/usr/bin/env bash
# Checks of the deployment files, none of which needs a Docker engine: the Nginx template
# (`nginx -t`), the Prometheus configuration, rules and their unit tests (promtool), the
# compose files for production, monitoring and a staging project (docker-compose config), the
# GitHub workflows (their JSON schema, and shellcheck on their scripts), the pre-commit
# configuration, the shell scripts (shellcheck), deploy.sh against a fake docker, the Grafana
# dashboard; and, with a running ferum, that /metrics passes `promtool check metrics`, carries
# every metric the dashboard and alerts use, and is not served on the public listener.
#
#   bash .ci/ops.sh PATH_TO_FERUM           (OPS_SKIP_METRICS=1 skips the running-ferum part)
#
# Installs what is missing from Debian's packages (nginx, prometheus for promtool,
# docker-compose, shellcheck, openssl, gettext-base, curl) without starting their daemons, and
# check-jsonschema and pre-commit from PyPI into $FERUM_CI_VENV.
set -euo pipefail
BIN=${1:?usage: ops.sh PATH_TO_FERUM}
cd "$(dirname "$0")/.."
VENV=${FERUM_CI_VENV:-/var/tmp/ferum-ci-venv}
ENV_EXAMPLE=${OPS_ENV_EXAMPLE:-.env.example}
export PATH="$PATH:/usr/sbin:/sbin"

# Every metric the dashboard and the alerts may use; each must also be in /metrics.
METRICS="ferum_build_info ferum_http_requests_total ferum_http_request_duration_seconds
ferum_db_pool_connections ferum_db_pool_max_connections ferum_service_requests_open
ferum_service_requests_overdue ferum_service_requests_resolution_seconds_avg_30d
ferum_outbox_depth ferum_backup_last_success_timestamp_seconds"

# shellcheck source=.ci/common.sh
. .ci/common.sh

need=()
command -v nginx >/dev/null 2>&1 || need+=(nginx)
command -v promtool >/dev/null 2>&1 || need+=(prometheus)
command -v docker-compose >/dev/null 2>&1 || need+=(docker-compose)
command -v shellcheck >/dev/null 2>&1 || need+=(shellcheck)
command -v openssl >/dev/null 2>&1 || need+=(openssl)
command -v envsubst >/dev/null 2>&1 || need+=(gettext-base)
command -v curl >/dev/null 2>&1 || need+=(curl)
if [ ${#need[@]} -gt 0 ]; then
    echo "== installing ${need[*]} (Debian packages)"
    # policy-rc.d answering 101 keeps the packages' services (nginx, prometheus and its node
    # exporter) from being started by their install scripts.
    policy_added=
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' | as_root tee /usr/sbin/policy-rc.d >/dev/null
        as_root chmod 755 /usr/sbin/policy-rc.d
        policy_added=1
    fi
    status=0
    as_root apt-get update -qq &&
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
            "${need[@]}" >/dev/null || status=$?
    [ -z "$policy_added" ] || as_root rm -f /usr/sbin/policy-rc.d
    [ "$status" = 0 ] || exit "$status"
fi

if [ ! -x "$VENV/bin/check-jsonschema" ] || [ ! -x "$VENV/bin/pre-commit" ]; then
    echo "== installing check-jsonschema and pre-commit (PyPI) into $VENV"
    [ -x "$VENV/bin/pip" ] || python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q --disable-pip-version-check "check-jsonschema>=0.39,<1" "pre-commit>=4,<5"
fi

echo "== nginx -t on deploy/nginx/ferum.conf.template (rendered with a self-signed certificate)"
mkdir -p "$WORK/nginx"
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=ferum.test \
    -keyout "$WORK/nginx/key.pem" -out "$WORK/nginx/cert.pem" 2>/dev/null
# Exactly the variables the compose file gives the nginx service; the template may use no other.
template_vars=$(grep -oE '[$][{][A-Z_][A-Z0-9_]*[}]' deploy/nginx/ferum.conf.template | sort -u | tr '\n' ' ')
for v in $template_vars; do
    name=${v#??}
    name=${name%?}
    case $name in
        FERUM_DOMAIN | FERUM_PUBLIC_URL | TLS_CERTIFICATE | TLS_CERTIFICATE_KEY) ;;
        *) echo "error: the template uses $v: give this check a value for it" >&2; exit 1 ;;
    esac
done
FERUM_DOMAIN=ferum.test FERUM_PUBLIC_URL=https://ferum.test \
    TLS_CERTIFICATE="$WORK/nginx/cert.pem" TLS_CERTIFICATE_KEY="$WORK/nginx/key.pem" \
    envsubst "$template_vars" <deploy/nginx/ferum.conf.template >"$WORK/nginx/ferum.conf"
# The official image's nginx.conf includes conf.d/*.conf inside http { } like this.
cat >"$WORK/nginx/nginx.conf" <<EOF
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log;
events {}
http {
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    include $WORK/nginx/ferum.conf;
}
EOF
# `nginx -t` opens the logs (here /dev/stdout: a file of ours) and binds the listening ports,
# which below 1024 needs root.
if ! as_root nginx -t -q -p "$WORK/nginx/" -c "$WORK/nginx/nginx.conf" -e "$WORK/nginx/error.log" \
    >"$WORK/nginx/test.out" 2>&1; then
    cat "$WORK/nginx/test.out" >&2
    exit 1
fi
echo "nginx: configuration OK"

echo "== promtool check config / check rules / test rules"
promtool check config deploy/prometheus/prometheus.yml
promtool check rules deploy/prometheus/alerts.yml
promtool test rules deploy/prometheus/alerts.test.yml

echo "== docker-compose config: production, with monitoring, and a staging project"
if [ ! -f "$ENV_EXAMPLE" ]; then
    echo "error: $ENV_EXAMPLE is missing; the compose files are checked with it" >&2
    exit 1
fi
# The variables the compose files insist on (${NAME:?…}) must be listed in the example; those
# it leaves empty for the operator to fill get a placeholder here.
cp "$ENV_EXAMPLE" "$WORK/env.production"
required=$(grep -ohE '[$][{][A-Z_][A-Z0-9_]*:[?]' docker-compose.yml compose.monitoring.yml |
    sed 's/^..//; s/..$//' | sort -u)
for name in $required; do
    if ! grep -q "^$name=" "$ENV_EXAMPLE"; then
        echo "error: $ENV_EXAMPLE does not list $name, which the compose files require" >&2
        exit 1
    fi
    sed -i "s|^$name=\$|$name=ci-placeholder|" "$WORK/env.production"
done
# A staging env file as DEPLOY.md says to make one: the example with the staging overrides.
override_keys=$(sed -n 's/^\([A-Z_][A-Z0-9_]*\)=.*/\1/p' deploy/env.staging.example | paste -sd'|' -)
{
    grep -Ev "^(${override_keys})=" "$WORK/env.production" || true
    grep -E '^[A-Z_][A-Z0-9_]*=' deploy/env.staging.example
} >"$WORK/env.staging"
compose_config() {
    local env_file=$1
    shift
    FERUM_ENV_FILE=$env_file docker-compose --env-file "$env_file" "$@" config
}
compose_config "$WORK/env.production" -f docker-compose.yml >"$WORK/production.yml"
compose_config "$WORK/env.production" -f docker-compose.yml -f compose.monitoring.yml \
    >"$WORK/production-monitoring.yml"
compose_config "$WORK/env.staging" -p ferum-staging -f docker-compose.yml -f compose.monitoring.yml \
    >"$WORK/staging-monitoring.yml"
# Both projects on one host: no host port may be published twice. And the nginx service gets
# every variable its template uses.
"$VENV/bin/python" - "$WORK/production-monitoring.yml" "$WORK/staging-monitoring.yml" <<'EOF'
import re
import sys
from ruamel.yaml import YAML

nginx_env = YAML(typ="safe").load(open(sys.argv[1]))["services"]["nginx"]["environment"]
template = open("deploy/nginx/ferum.conf.template").read()
missing = set(re.findall(r"\$\{([A-Z_][A-Z0-9_]*)\}", template)) - set(nginx_env)
if missing:
    sys.exit(f"error: the nginx template uses {sorted(missing)}, which docker-compose.yml does not set")

def host_ports(path):
    ports = set()
    for name, service in YAML(typ="safe").load(open(path))["services"].items():
        if "profiles" in service:
            continue
        for p in service.get("ports", []):
            if isinstance(p, dict):
                ports.add(str(p.get("published")))
            else:
                parts = str(p).split(":")
                ports.add(parts[-2] if len(parts) > 1 else parts[0])
    return ports

production, staging = (host_ports(p) for p in sys.argv[1:3])
clash = production & staging
if clash:
    sys.exit(f"error: production and staging both publish host ports {sorted(clash)}")
print(f"compose: production publishes {sorted(production)}, staging {sorted(staging)}")
EOF

echo "== GitHub workflows: schema (check-jsonschema) and shellcheck of their scripts"
"$VENV/bin/check-jsonschema" --builtin-schema vendor.github-workflows .github/workflows/*.yml
"$VENV/bin/python" - .github/workflows/*.yml <<'EOF'
import re
import subprocess
import sys
from ruamel.yaml import YAML

bad = 0
for path in sys.argv[1:]:
    workflow = YAML(typ="safe").load(open(path))
    for job_name, job in workflow["jobs"].items():
        for i, step in enumerate(job.get("steps", [])):
            if "run" not in step:
                continue
            # Actions runs `bash -e -o pipefail`; ${{ … }} is replaced before the shell sees it.
            script = "set -eo pipefail\n" + re.sub(r"\$\{\{.*?\}\}", "x", step["run"])
            result = subprocess.run(["shellcheck", "-s", "bash", "-"], input=script,
                                    capture_output=True, text=True)
            if result.returncode:
                bad += 1
                print(f"{path}: job {job_name}, step {step.get('name', i + 1)}:\n{result.stdout}")
if bad:
    sys.exit(1)
print("workflow scripts: shellcheck OK")
EOF

echo "== pre-commit validate-config"
"$VENV/bin/pre-commit" validate-config .pre-commit-config.yaml

echo "== shellcheck deploy/*.sh .ci/*.sh"
shellcheck deploy/*.sh .ci/*.sh

echo "== deploy/test-deploy.sh (deploy.sh against a fake docker)"
bash deploy/test-deploy.sh

echo "== Grafana provisioning and dashboard; metric names in the dashboard and alerts"
"$VENV/bin/python" - "$METRICS" <<'EOF'
import json
import re
import subprocess
import sys
import tempfile
from ruamel.yaml import YAML

known = set(sys.argv[1].split())
# A histogram's series.
known |= {f"ferum_http_request_duration_seconds_{s}" for s in ("bucket", "sum", "count")}
yaml = YAML(typ="safe")

datasources = yaml.load(open("deploy/grafana/provisioning/datasources/prometheus.yml"))
uids = {d["uid"] for d in datasources["datasources"]}
provider = yaml.load(open("deploy/grafana/provisioning/dashboards/ferum.yml"))["providers"][0]
assert provider["options"]["path"] == "/etc/grafana/dashboards", "dashboard path != the compose mount"

dashboard = json.load(open("deploy/grafana/dashboards/ferum.json"))
exprs = []
for panel in dashboard["panels"]:
    if panel["type"] == "row":
        continue
    if panel["datasource"]["uid"] not in uids:
        sys.exit(f"panel {panel['title']!r} uses an unprovisioned data source")
    for target in panel["targets"]:
        exprs.append((panel["title"], target["expr"]))

errors = []
for where, text in [("deploy/prometheus/alerts.yml", open("deploy/prometheus/alerts.yml").read())] + [
    (f"dashboard panel {title!r}", expr) for title, expr in exprs
]:
    for name in sorted(set(re.findall(r"\bferum_[a-z0-9_]+", text))):
        if name not in known:
            errors.append(f"{where}: unknown metric {name}")
if errors:
    sys.exit("\n".join(errors))

# Each panel's query must parse: promtool checks them as recording rules.
rules = {"groups": [{"name": "dashboard", "rules": [
    {"record": f"dashboard:panel_{i}", "expr": expr.replace("$__rate_interval", "5m")}
    for i, (_, expr) in enumerate(exprs)
]}]}
with tempfile.NamedTemporaryFile("w", suffix=".yml") as f:
    json.dump(rules, f)
    f.flush()
    result = subprocess.run(["promtool", "check", "rules", f.name], capture_output=True, text=True)
    if result.returncode:
        sys.exit("dashboard queries do not parse:\n" + result.stdout + result.stderr)
print(f"dashboard: {len(exprs)} queries parse and use only known metrics; alerts likewise")
EOF

if [ -n "${OPS_SKIP_METRICS:-}" ]; then
    echo "== /metrics: skipped (OPS_SKIP_METRICS is set)"
    exit 0
fi

echo "== /metrics of a running ferum: promtool check metrics"
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
PORT=$(free_port)
METRICS_PORT=$(free_port)
while [ "$METRICS_PORT" = "$PORT" ]; do METRICS_PORT=$(free_port); done
if [ ! -x "$BIN" ]; then
    echo "error: $BIN is not an executable ferum (cargo build first)" >&2
    exit 1
fi
BIN=$(cd "$(dirname "$BIN")" && pwd)/$(basename "$BIN")
mkdir -p "$WORK/server"
(cd "$WORK/server" && exec env -u DATABASE_URL -u FERUM_METRICS_TOKEN -u FERUM_DATA_DIR \
    FERUM_BIND="127.0.0.1:$PORT" FERUM_METRICS_BIND="127.0.0.1:$METRICS_PORT" REDIS_URL= \
    FERUM_ADMIN_EMAIL=ops-admin@example.ru FERUM_ADMIN_PASSWORD='ops check admin password' \
    FERUM_LOG=warn "$BIN" serve >"$WORK/server.log" 2>&1) &
SERVER=$!
wait_until_up "http://127.0.0.1:$PORT"
# Traffic of each kind so that the HTTP metrics have series: a 200, a 401 and a 404.
curl -s -o /dev/null "http://127.0.0.1:$PORT/api/v1/openapi.json"
curl -s -o /dev/null "http://127.0.0.1:$PORT/api/v1/requests"
curl -s -o /dev/null "http://127.0.0.1:$PORT/api/v1/no-such-thing"
curl -fsS "http://127.0.0.1:$METRICS_PORT/metrics" >"$WORK/metrics.txt"
promtool check metrics <"$WORK/metrics.txt"
missing=
for m in $METRICS; do
    grep -q "^# TYPE $m " "$WORK/metrics.txt" || missing="$missing $m"
done
if [ -n "$missing" ]; then
    echo "error: /metrics lacks metrics the dashboard or alerts use:$missing" >&2
    exit 1
fi
grep -q '^ferum_http_requests_total{' "$WORK/metrics.txt" ||
    { echo "error: no ferum_http_requests_total series after three requests" >&2; exit 1; }
public=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/metrics")
if [ "$public" != 404 ]; then
    echo "error: /metrics on the public listener answered $public without a token (expected 404)" >&2
    exit 1
fi
echo "metrics: $(grep -c '^# TYPE ' "$WORK/metrics.txt") metric families pass promtool; none is on the public listener"
