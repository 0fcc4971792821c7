#!/usr/bin/env bash
# Builds meshmart's real dev components once into .cache/bin (reused until their pinned version changes):
#   devdb    embedded FerretDB v1.24.2 (tools/devdb), the Mongo-wire database for dev and tests
#   grpcurl    v1.9.3, used by the tests and the README recipes
#   kustomize  v5.8.1, renders the cluster manifests for the offline check (npm run check:manifests, npm test)
#   actionlint v1.7.12, validates .github/workflows (npm test)
# With --all also the load and cluster extras: ghz, kubeconform. (fortio v1.75.2 does not build here:
# its dependency grol.io/grol is not served by the Go module proxy these machines reach.)
# With --kube also the local Kubernetes control plane (npm start -- --mesh --kube, npm test): etcd v3.6.16,
# kube-apiserver and kubectl v1.34.4 and Istio's CRDs (tools/kube/setup.sh; ~6 minutes of Go the first time).
# Needs Go >= 1.24 and the Go module proxy. Set MESHMART_SKIP_DEVDB=1 when MONGODB_URI points at a real MongoDB.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN="$PWD/.cache/bin"
mkdir -p "$BIN"

# name  module@version
TOOLS=(
  "grpcurl github.com/fullstorydev/grpcurl/cmd/grpcurl@v1.9.3"
  "kustomize sigs.k8s.io/kustomize/kustomize/v5@v5.8.1"
  "actionlint github.com/rhysd/actionlint/cmd/actionlint@v1.7.12"
)
KUBE=""
for arg in "$@"; do
  case "$arg" in
    --all) ALL=1 ;;
    --kube) KUBE=1 ;;
    *) echo "setup: unknown option $arg (use --kube and/or --all)" >&2; exit 2 ;;
  esac
done
if [[ -n "${ALL:-}" ]]; then
  TOOLS+=(
    "ghz github.com/bojand/ghz/cmd/ghz@v0.121.0"
    "kubeconform github.com/yannh/kubeconform/cmd/kubeconform@v0.7.0"
  )
fi

need_go() {
  command -v go >/dev/null || { echo "setup: Go >= 1.24 is needed to build $1 (or set MONGODB_URI and MESHMART_SKIP_DEVDB=1)" >&2; exit 1; }
}

# Rebuild devdb when its source changes: the stamp is a hash of tools/devdb.
if [[ -z "${MESHMART_SKIP_DEVDB:-}" ]]; then
  stamp=$(cat tools/devdb/go.mod tools/devdb/go.sum tools/devdb/*.go | sha256sum | cut -c1-16)
  if [[ ! -x "$BIN/devdb" || "$(cat "$BIN/devdb.stamp" 2>/dev/null)" != "$stamp" ]]; then
    need_go devdb
    echo "setup: building devdb (embedded FerretDB v1.24.2); the first build takes a few minutes" >&2
    (cd tools/devdb && go build -o "$BIN/devdb" .)
    echo "$stamp" > "$BIN/devdb.stamp"
  fi
fi

for entry in "${TOOLS[@]}"; do
  read -r name spec <<<"$entry"
  if [[ ! -x "$BIN/$name" || "$(cat "$BIN/$name.stamp" 2>/dev/null)" != "$spec" ]]; then
    need_go "$name"
    echo "setup: installing $spec" >&2
    GOBIN="$BIN" go install "$spec"
    echo "$spec" > "$BIN/$name.stamp"
  fi
done

# istio.io/istio of the istiod meshmart runs; its CRDs are what the local control plane installs.
ISTIO_VERSION=v0.0.0-20260423205519-b01690e6db7d
if [[ -n "$KUBE" ]]; then
  tools/kube/setup.sh "$ISTIO_VERSION"
fi
