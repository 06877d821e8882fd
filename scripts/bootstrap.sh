#!/usr/bin/env bash
# Fresh-machine set-up, idempotent and quiet when everything is already there.
#   scripts/bootstrap.sh         what the main job runs: Java 17 and Maven (the Kafka jars), the project into .venv
#   scripts/bootstrap.sh tests   that, plus what only the tests use: Chromium (the page test), podman, runc and
#                                debootstrap (the image and its Kubernetes smoke test), the dev extras, and, built
#                                from the Go module proxy, helm, the Jaeger collector and promtool
# Wheels are installed by uv (from PyPI, parallel downloads, cached in ~/.cache/uv); the Go tools build in the
# background meanwhile (cached by Go).
set -euo pipefail
cd "$(dirname "$0")/.."

mode=${1:-main}
case "$mode" in
  main | tests) ;;
  *) echo "usage: $0 [tests]" >&2; exit 2 ;;
esac

need=()
command -v java >/dev/null || need+=(openjdk-17-jre-headless)
command -v mvn >/dev/null || need+=(maven)
command -v unshare >/dev/null || need+=(util-linux)
command -v ip >/dev/null || need+=(iproute2)
if [ "$mode" = tests ] && [ ! -x /usr/bin/chromium ]; then need+=(chromium); fi
if [ "$mode" = tests ]; then  # the image and the Kubernetes smoke test (tests/kube_smoke.py): Debian's podman
  for tool in podman runc debootstrap; do command -v "$tool" >/dev/null || need+=("$tool"); done
fi
if [ ${#need[@]} -gt 0 ]; then
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "bootstrap: installing ${need[*]}" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# test tools, each pinned (helm here, the others by their own Go module under tools/), built while wheels install
build_tools() {
  local helm_version=v3.22.0
  if [ ! -x .venv/bin/helm ] || [ ! -f ".venv/.helm-$helm_version" ]; then
    echo "bootstrap: building helm $helm_version" >&2
    SECONDS=0
    GOBIN="$PWD/.venv/bin" GOFLAGS=-mod=mod go install "helm.sh/helm/v3/cmd/helm@$helm_version"
    touch ".venv/.helm-$helm_version"
    echo "bootstrap: built helm in ${SECONDS} s" >&2
  fi
  for tool in jaeger promtool; do
    if [ ! -x ".venv/bin/$tool" ] || [ "tools/$tool/go.mod" -nt ".venv/bin/$tool" ]; then
      echo "bootstrap: building $tool" >&2
      SECONDS=0
      (cd "tools/$tool" && GOFLAGS=-mod=mod go build -o "../../.venv/bin/$tool" "$(sed -n 's/^tool //p' go.mod)")
      echo "bootstrap: built $tool in ${SECONDS} s" >&2
    fi
  done
}

python=${PYTHON:-python3.11}
command -v "$python" >/dev/null || python=python3
[ -x .venv/bin/python ] || "$python" -m venv .venv
tools=""
if [ "$mode" = tests ]; then
  build_tools > .venv/tools-build.log 2>&1 &
  tools=$!
fi

[ -x .venv/bin/uv ] || .venv/bin/python -m pip install -q uv
export UV_NATIVE_TLS=1 UV_LINK_MODE=copy  # the system's CA store (as pip's); copies, as the cache may be on another disk
extras=""; stamp=.venv/.installed
if [ "$mode" = tests ]; then extras="[dev]"; stamp=.venv/.installed-tests; fi
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  .venv/bin/uv pip install -q --python .venv/bin/python -e ".$extras"
  touch "$stamp"
fi

if [ -n "$tools" ] && ! wait "$tools"; then
  cat .venv/tools-build.log >&2
  echo "bootstrap: building the test tools failed" >&2
  exit 1
fi
