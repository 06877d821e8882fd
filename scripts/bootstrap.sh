#!/usr/bin/env bash
# Fresh-machine set-up: system packages (Java 17, Maven, Chromium for the page test), then the
# project's virtualenv. Idempotent and quiet when everything is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v java >/dev/null || need+=(openjdk-17-jre-headless)
command -v mvn >/dev/null || need+=(maven)
[ -x /usr/bin/chromium ] || need+=(chromium)
command -v unshare >/dev/null || need+=(util-linux)
command -v ip >/dev/null || need+=(iproute2)
if [ ${#need[@]} -gt 0 ]; then
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "bootstrap: installing ${need[*]}" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

python=${PYTHON:-python3.11}
command -v "$python" >/dev/null || python=python3
[ -x .venv/bin/python ] || "$python" -m venv .venv
stamp=.venv/.installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e '.[dev]'
  touch "$stamp"
fi

# helm renders and lints the chart in tests/deploy (built from the Go module proxy, cached by Go)
helm_version=v3.22.0
if [ ! -x .venv/bin/helm ] || [ ! -f ".venv/.helm-$helm_version" ]; then
  echo "bootstrap: building helm $helm_version" >&2
  GOBIN="$PWD/.venv/bin" GOFLAGS=-mod=mod go install "helm.sh/helm/v3/cmd/helm@$helm_version"
  touch ".venv/.helm-$helm_version"
fi

# the trace collector the observability test feeds (Jaeger v2, on the OpenTelemetry Collector) and promtool,
# which checks the chart's alert rules: each pinned by its own Go module under tools/ (built once, cached by Go)
for tool in jaeger promtool; do
  if [ ! -x ".venv/bin/$tool" ] || [ "tools/$tool/go.mod" -nt ".venv/bin/$tool" ]; then
    echo "bootstrap: building $tool" >&2
    (cd "tools/$tool" && GOFLAGS=-mod=mod go build -o "../../.venv/bin/$tool" "$(sed -n 's/^tool //p' go.mod)")
  fi
done
