#!/usr/bin/env bash
# buf breaking (FILE rules) of proto/ against the previous commit of main, so a change that would break
# existing clients (a removed field, a renumbered tag, a renamed RPC) fails CI. On the first commit, or
# in a shallow clone without history, there is nothing to compare with and the check says so. Needs
# .cache/protovalidate (npm run check:breaking fetches it first).
# Usage: tools/checks/check-breaking.sh [git-ref]   (default: HEAD~1 when HEAD is committed work, else HEAD)
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
BUF="${BUF:-npx buf}"
ref="${1:-}"
if [[ -z "$ref" ]]; then
  if [[ -n "$(git status --porcelain -- proto)" ]]; then ref=HEAD; else ref=HEAD~1; fi
fi
if ! git rev-parse --verify --quiet "$ref^{commit}" >/dev/null; then
  echo "check-breaking: no $ref to compare with (first commit or shallow clone); skipped"
  exit 0
fi
if ! git cat-file -e "$ref:proto" 2>/dev/null; then
  echo "check-breaking: $ref has no proto/ yet; skipped"
  exit 0
fi
# The contracts at $ref, with the same third-party module beside them (.cache/protovalidate is not in git).
against=$(mktemp -d)
trap 'rm -rf "$against"' EXIT
git archive "$ref" proto buf.yaml | tar -x -C "$against"
if [[ -d .cache/protovalidate ]]; then
  mkdir -p "$against/.cache" && cp -r .cache/protovalidate "$against/.cache/"
fi
$BUF breaking proto --against "$against/proto"
echo "check-breaking: proto/ is wire- and source-compatible with $ref"
