#!/usr/bin/env bash
# Prepares a machine for Studyhall: the system packages it needs, then the venv.
# Usage: scripts/bootstrap.sh [--with-redis | --with-test-servers]
# With --with-redis (make up), redis-server is required too, unless STUDYHALL_REDIS_URL
# points at a running one. With --with-test-servers, redis-server and PostgreSQL are required
# (the test harness starts its own copies of both unless STUDYHALL_TEST_*_URL point at running
# ones), and Debian's chromium and chromium-driver, in which a test opens analytics' weekly
# report.
set -euo pipefail
cd "$(dirname "$0")/.."

want_servers=0
want_redis=0
case "${1:-}" in
  --with-test-servers) want_servers=1 ;;
  --with-redis) want_redis=1 ;;
  "") ;;
  *) echo "bootstrap: unknown option ${1}; see the usage at the top of $0" >&2; exit 2 ;;
esac

python=${PYTHON:-}
if [ -z "$python" ]; then
  for candidate in python3.11 python3.12 python3.13 python3; do
    if command -v "$candidate" >/dev/null 2>&1; then python=$candidate; break; fi
  done
fi
[ -n "$python" ] || { echo "bootstrap: no python3 found; install Python >= 3.11" >&2; exit 1; }
"$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
  || { echo "bootstrap: $python is older than 3.11; set PYTHON=/path/to/python3.11" >&2; exit 1; }

missing=()
"$python" -c 'import venv, ensurepip' >/dev/null 2>&1 || missing+=("python3-venv")
if [ "$want_redis" = 1 ] && [ -z "${STUDYHALL_REDIS_URL:-}" ] \
  && ! command -v redis-server >/dev/null 2>&1; then
  missing+=("redis-server")
fi
if [ "$want_servers" = 1 ]; then
  [ -z "${STUDYHALL_TEST_REDIS_URL:-}" ] && ! command -v redis-server >/dev/null 2>&1 \
    && missing+=("redis-server")
  if [ -z "${STUDYHALL_TEST_POSTGRES_URL:-}" ] \
    && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
    missing+=("postgresql")
  fi
  command -v chromium >/dev/null 2>&1 || missing+=("chromium")
  [ -x /usr/bin/chromedriver ] || missing+=("chromium-driver")
fi

if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "bootstrap: installing ${missing[*]} with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    # The Debian packages start their own servers; the project never relies on them.
  else
    echo "bootstrap: missing system packages: ${missing[*]}" >&2
    echo "bootstrap: run: sudo apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
fi

stamp=.venv/.installed
if [ ! -x .venv/bin/python ]; then
  "$python" -m venv .venv
fi
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ constraints.txt -nt "$stamp" ]; then
  .venv/bin/python -m pip install -q --upgrade pip >/dev/null
  .venv/bin/python -m pip install -q -c constraints.txt -e '.[dev]'
  touch "$stamp"
fi
