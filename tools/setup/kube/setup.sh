#!/usr/bin/env bash
# Builds the local Kubernetes control plane into .cache/bin (tools/setup/setup.sh --kube runs this; npm test does):
#   etcd v3.6.16                 from the wrapper module tools/setup/kube/etcd
#   kube-apiserver, kubectl      v1.34.4, from the wrapper module tools/setup/kube/apiserver
# and copies Istio's CRDs (crd-all.gen.yaml of the istio.io/istio module istiod is built from, $1) to
# .cache/kube/istio-crds.yaml. Each output is stamped with a hash of what it is built from and rebuilt only when
# that changes. About 6 minutes of Go build on 2 cores the first time (kube-apiserver is most of it).
#
# Why wrapper modules: k8s.io/kubernetes and etcd's server module `replace` their sibling modules with local
# directories, which `go install module@version` refuses. A module of our own that requires them and maps each
# of those replacements to the published version builds them from the Go module proxy. GOSUMDB=off because a
# few of their pinned pseudo-versions have no checksum database entry; go.sum beside each go.mod still pins
# every module's hash.
set -euo pipefail
cd "$(dirname "$0")/../../.."
BIN="$PWD/.cache/bin"
ISTIO_VERSION="${1:?usage: tools/setup/kube/setup.sh <istio.io/istio version>}"
mkdir -p "$BIN" .cache/kube

command -v go >/dev/null || { echo "setup: Go >= 1.26 is needed to build etcd and kube-apiserver (--kube)" >&2; exit 1; }

stamp_of() { cat "$@" | sha256sum | cut -c1-16; }
fresh() { [[ -x "$BIN/$1" && "$(cat "$BIN/$1.stamp" 2>/dev/null)" == "$2" ]]; }

# $1 wrapper dir, $2 package, $3 binary name, $4 stamp, $5 ldflags
build() {
  fresh "$3" "$4" && return 0
  echo "setup: building $3 (tools/setup/kube/$1); the first build takes a while" >&2
  (cd "tools/setup/kube/$1" && GOSUMDB=off GOFLAGS=-mod=mod go build -trimpath -ldflags "$5" -o "$BIN/$3.tmp" "$2")
  mv "$BIN/$3.tmp" "$BIN/$3"
  echo "$4" >"$BIN/$3.stamp"
}

build etcd go.etcd.io/etcd/server/v3 etcd "$(stamp_of tools/setup/kube/etcd/go.mod tools/setup/kube/etcd/go.sum)" "-s -w"

# kubectl version and the API server's /version report v1.34.4 (istiod and istioctl read it), not v0.0.0.
KUBE_VERSION=v1.34.4
ld="-s -w"
for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ld="$ld -X $p.gitVersion=$KUBE_VERSION -X $p.gitMajor=1 -X $p.gitMinor=34 -X $p.gitTreeState=clean"
done
kstamp="$(stamp_of tools/setup/kube/apiserver/go.mod tools/setup/kube/apiserver/go.sum)"
build apiserver k8s.io/kubernetes/cmd/kubectl kubectl "$kstamp" "$ld"
build apiserver k8s.io/kubernetes/cmd/kube-apiserver kube-apiserver "$kstamp" "$ld"

crds=.cache/kube/istio-crds.yaml
if [[ ! -s "$crds" || "$(cat "$crds.stamp" 2>/dev/null)" != "$ISTIO_VERSION" ]]; then
  dir=$(GONOSUMDB=istio.io/client-go,github.com/envoyproxy/go-control-plane/contrib GOFLAGS=-mod=mod \
    go mod download -json "istio.io/istio@$ISTIO_VERSION" | sed -n 's/.*"Dir": "\(.*\)".*/\1/p')
  src="$dir/manifests/charts/base/files/crd-all.gen.yaml"
  [[ -f "$src" ]] || { echo "setup: $src not found (istio.io/istio@$ISTIO_VERSION)" >&2; exit 1; }
  cp "$src" "$crds.tmp" && chmod u+w "$crds.tmp" && mv "$crds.tmp" "$crds"
  echo "$ISTIO_VERSION" >"$crds.stamp"
fi
