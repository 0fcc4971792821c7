#!/usr/bin/env bash
# gen/ is generated from proto/ (and the .proto files of grpc-health-check, @grpc/reflection and
# google-proto-files); it is committed so services and Dockerfiles build without buf. This check
# regenerates it and fails when the committed copy is stale or was edited by hand.
set -euo pipefail
cd "$(dirname "$0")/../.."
npx buf generate
if ! git diff --quiet --exit-code -- gen || [ -n "$(git status --porcelain -- gen)" ]; then
  echo "check-generated: gen/ differs from what buf generate makes from proto/; run npm run generate and commit gen/" >&2
  git status --short -- gen >&2
  exit 1
fi
echo "check-generated: gen/ is up to date"
