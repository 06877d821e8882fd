#!/usr/bin/env bash
# Render the Helm chart into k8s/clipstream.yaml (plain manifests for `kubectl apply -k k8s/`).
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/helm template clipstream helm/clipstream --namespace clipstream -f k8s/values.yaml > k8s/clipstream.yaml
echo "wrote k8s/clipstream.yaml"
