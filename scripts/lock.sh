#!/usr/bin/env bash
# Regenerates the pins from pyproject.toml (make lock):
#   constraints.txt   every package of every extra, pinned: the dev venv installs with it
#   requirements.lock the runtime packages only, pinned with their sha256 hashes: the image
#                     installs them with --require-hashes, then the project with --no-deps
# Today's pins are kept where they still satisfy pyproject.toml; UPGRADE=1 moves every
# package to its newest release.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || scripts/bootstrap.sh
.venv/bin/python -m pip install -q uv
uv=.venv/bin/uv
keep=()
[ "${UPGRADE:-0}" = 1 ] || keep=(-c constraints.txt)
target=(--python-version 3.11 --python-platform x86_64-manylinux_2_28 --no-header)

"$uv" pip compile pyproject.toml "${target[@]}" "${keep[@]}" --all-extras \
  --no-annotate --no-emit-package studyhall -o constraints.txt.new
"$uv" pip compile pyproject.toml "${target[@]}" -c constraints.txt.new --generate-hashes \
  -o requirements.lock
mv constraints.txt.new constraints.txt
echo "lock: constraints.txt $(grep -c '==' constraints.txt) pins," \
  "requirements.lock $(grep -c '==' requirements.lock) hashed"
