#!/usr/bin/env bash
# Fails when gen/ differs from what `make proto` would write now.
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
.venv/bin/python scripts/gen_proto.py "$tmp/gen" >/dev/null
if ! diff -r -q "$tmp/gen" gen >/dev/null; then
  diff -r -q "$tmp/gen" gen || true
  echo "generated contracts are stale: run 'make proto' and commit gen/" >&2
  exit 1
fi
echo "generated contracts are fresh"
