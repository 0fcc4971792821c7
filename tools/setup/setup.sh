#!/usr/bin/env bash
# Builds meshmart's real dev components once into .cache/bin (reused until their pinned version changes):
#   devdb    embedded FerretDB v1.24.2 (tools/setup/devdb), the Mongo-wire database for dev and tests
#   grpcurl    v1.9.3, used by the tests and the README recipes
#   kustomize  v5.8.1, renders the cluster manifests for the offline check (npm run check:manifests, npm test)
#   actionlint v1.7.12, validates .github/workflows (npm test)
# With --mesh also Istio's control plane for the local mesh (npm start -- --mesh, npm test):
#   pilot-discovery (istiod) and istioctl from istio.io/istio at ISTIO_VERSION below, pilot-discovery with
#   tools/setup/istio/serviceentry-nil-multicluster.patch (without it, it panics at start when there is no Kubernetes);
#   about 5 + 3 minutes of Go build on 2 cores the first time, ~190 MB each.
# With --kube also the local Kubernetes control plane (npm start -- --mesh --kube, npm test): etcd v3.6.16,
#   kube-apiserver and kubectl v1.34.4 and Istio's CRDs of ISTIO_VERSION (tools/setup/kube/setup.sh; about 6 minutes
#   of Go build on 2 cores the first time).
# With --all also the load and cluster extras: ghz, kubeconform, the mesh and the control plane. (fortio v1.75.2
# does not build here: its dependency grol.io/grol is not served by the Go module proxy these machines reach.)
# Needs Go >= 1.24 and the Go module proxy. Set MESHMART_SKIP_DEVDB=1 when MONGODB_URI points at a real MongoDB.
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN="$PWD/.cache/bin"
mkdir -p "$BIN"

ALL="" MESH="" KUBE=""
for arg in "$@"; do
  case "$arg" in
    --all) ALL=1 MESH=1 KUBE=1 ;;
    --mesh) MESH=1 ;;
    --kube) KUBE=1 ;;
    *) echo "setup: unknown option $arg (use --mesh, --kube and/or --all)" >&2; exit 2 ;;
  esac
done

# name  module@version
TOOLS=(
  "grpcurl github.com/fullstorydev/grpcurl/cmd/grpcurl@v1.9.3"
  "kustomize sigs.k8s.io/kustomize/kustomize/v5@v5.8.1"
  "actionlint github.com/rhysd/actionlint/cmd/actionlint@v1.7.12"
)
if [[ -n "$ALL" ]]; then
  TOOLS+=(
    "ghz github.com/bojand/ghz/cmd/ghz@v0.121.0"
    "kubeconform github.com/yannh/kubeconform/cmd/kubeconform@v0.7.0"
  )
fi

need_go() {
  command -v go >/dev/null || { echo "setup: Go >= 1.24 is needed to build $1 (or set MONGODB_URI and MESHMART_SKIP_DEVDB=1)" >&2; exit 1; }
}

# Rebuild devdb when its source changes: the stamp is a hash of tools/setup/devdb.
if [[ -z "${MESHMART_SKIP_DEVDB:-}" ]]; then
  stamp=$(cat tools/setup/devdb/go.mod tools/setup/devdb/go.sum tools/setup/devdb/*.go | sha256sum | cut -c1-16)
  if [[ ! -x "$BIN/devdb" || "$(cat "$BIN/devdb.stamp" 2>/dev/null)" != "$stamp" ]]; then
    need_go devdb
    echo "setup: building devdb (embedded FerretDB v1.24.2); the first build takes a few minutes" >&2
    (cd tools/setup/devdb && go build -o "$BIN/devdb" .)
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

# istio.io/istio master of 2026-04-23 (first released in 1.31.0-alpha.0): the pseudo-version of tag 1.29.6 is
# refused by the module proxy. Two of its dependencies' pseudo-versions have no checksum database entry.
ISTIO_VERSION=v0.0.0-20260423205519-b01690e6db7d
ISTIO_PATCH=tools/setup/istio/serviceentry-nil-multicluster.patch

# Builds $1 (a package of istio.io/istio) into .cache/bin/$2 from a writable, patched copy of the module. The
# copy lives outside the worktree, named by version and patch, so that every clone reuses it and Go's build
# cache (keyed by the source directory) too.
build_istio() {
  local pkg="$1" name="$2" stamp="$ISTIO_VERSION $(sha256sum "$ISTIO_PATCH" | cut -c1-16)"
  [[ -x "$BIN/$name" && "$(cat "$BIN/$name.stamp" 2>/dev/null)" == "$stamp" ]] && return 0
  need_go "$name"
  export GONOSUMDB=istio.io/client-go,github.com/envoyproxy/go-control-plane/contrib GOFLAGS=-mod=mod
  local src
  src="${XDG_CACHE_HOME:-$HOME/.cache}/meshmart/istio-src-$ISTIO_VERSION-${stamp##* }"
  if [[ ! -f "$src/.meshmart-patched" ]]; then
    local mod tmp
    mod=$(go mod download -json "istio.io/istio@$ISTIO_VERSION" | sed -n 's/.*"Dir": "\(.*\)".*/\1/p')
    [[ -d "$mod" ]] || { echo "setup: go mod download istio.io/istio@$ISTIO_VERSION gave no directory" >&2; exit 1; }
    mkdir -p "$(dirname "$src")"
    tmp=$(mktemp -d "$src.tmp.XXXXXX")
    cp -r "$mod/." "$tmp" && chmod -R u+w "$tmp"
    if ! (cd "$tmp" && patch -p1 --forward --silent --no-backup-if-mismatch) < "$ISTIO_PATCH"; then
      rm -rf "$tmp"
      echo "setup: $ISTIO_PATCH no longer applies to istio.io/istio@$ISTIO_VERSION; update the patch (or the version)" >&2
      exit 1
    fi
    touch "$tmp/.meshmart-patched"
    # Another setup may have finished the same copy meanwhile: keep the first one.
    mv -T "$tmp" "$src" 2>/dev/null || rm -rf "$tmp"
  fi
  echo "setup: building $name (istio.io/istio@$ISTIO_VERSION); the first build takes several minutes" >&2
  (cd "$src" && go build -o "$BIN/$name.tmp" "./$pkg") && mv "$BIN/$name.tmp" "$BIN/$name"
  echo "$stamp" > "$BIN/$name.stamp"
}

if [[ -n "$MESH" ]]; then
  build_istio pilot/cmd/pilot-discovery pilot-discovery
  build_istio istioctl/cmd/istioctl istioctl
fi

if [[ -n "$KUBE" ]]; then
  tools/setup/kube/setup.sh "$ISTIO_VERSION"
fi
