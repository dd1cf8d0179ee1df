#!/usr/bin/env bash
# Fails when gen/ differs from what `make proto` would write now, or the vendored
# protovalidate schema from what the installed package holds.
set -euo pipefail
cd "$(dirname "$0")/.."
# The vendored buf/validate/validate.proto is what the pinned protovalidate package holds.
.venv/bin/python scripts/vendor_validate_proto.py --check
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
.venv/bin/python scripts/gen_proto.py "$tmp/gen" >/dev/null
if ! diff -r -q "$tmp/gen" gen >/dev/null; then
  diff -r -q "$tmp/gen" gen || true
  echo "generated contracts are stale: run 'make proto' and commit gen/" >&2
  exit 1
fi
echo "generated contracts are fresh"
