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

# The consumer kit (clients/python) is the project's own: resolved from its directory, never
# pinned. The services import its decoder, so the image installs it next to the project.
local=(--no-emit-package studyhall --no-emit-package studyhall-consumer)
kit=$(mktemp)
trap 'rm -f "$kit"' EXIT
echo "studyhall-consumer[notifier] @ file://$PWD/clients/python" > "$kit"
"$uv" pip compile pyproject.toml "$kit" "${target[@]}" "${keep[@]}" --all-extras \
  --no-annotate "${local[@]}" -o constraints.txt.new
echo "studyhall-consumer @ file://$PWD/clients/python" > "$kit"
"$uv" pip compile pyproject.toml "$kit" "${target[@]}" -c constraints.txt.new \
  --generate-hashes "${local[@]}" -o requirements.lock
mv constraints.txt.new constraints.txt
sed -i 's/constraints\.txt\.new/constraints.txt/' requirements.lock
echo "lock: constraints.txt $(grep -c '==' constraints.txt) pins," \
  "requirements.lock $(grep -c '==' requirements.lock) hashed"
