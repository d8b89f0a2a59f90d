#!/usr/bin/env bash
# Regenerates the plain manifests in deploy/kubernetes/ from the Helm chart with its default
# values: one file per chart template, exactly `helm template` output (a test checks), so the
# two never drift. Run after changing the chart or its files/:
#   deploy/render.sh            (uses .tools/helm from `make deploy-tools`, or HELM=...)
set -euo pipefail
cd "$(dirname "$0")/.."
HELM=${HELM:-.tools/helm}
CHART=deploy/helm/switchyard
OUT=deploy/kubernetes
for t in "$CHART"/templates/*.yaml; do
  name=$(basename "$t")
  if ! out=$("$HELM" template switchyard "$CHART" --namespace switchyard --show-only "templates/$name" 2>&1); then
    case "$out" in *"could not find template"*) rm -f "$OUT/$name"; continue ;; esac  # off by default
    printf '%s\n' "$out" >&2; exit 1
  fi
  printf '%s\n' "$out" > "$OUT/$name"
done
echo "rendered: $(cd "$OUT" && ls -- *.yaml | grep -v kustomization | tr '\n' ' ')"
