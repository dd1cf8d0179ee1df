#!/usr/bin/env bash
# Checks proto/ for breaking changes against main. On main itself the reference is the
# previous commit of main, so each landing is checked against what was there before it.
set -euo pipefail
cd "$(dirname "$0")/.."
branch=$(git rev-parse --abbrev-ref HEAD)
if [ "$branch" = main ] || ! git rev-parse --verify -q main >/dev/null; then
  ref=HEAD~1
else
  ref=$(git merge-base HEAD main)
fi
if ! git rev-parse --verify -q "$ref" >/dev/null; then
  echo "buf breaking: no earlier commit to compare with"
  exit 0
fi
if [ -z "$(git ls-tree -r --name-only "$ref" -- proto | head -1)" ]; then
  echo "buf breaking: $ref has no contracts yet"
  exit 0
fi
.venv/bin/buf breaking --against ".git#ref=$(git rev-parse "$ref")"
echo "buf breaking: no breaking change against $ref"
