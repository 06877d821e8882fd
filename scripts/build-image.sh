#!/usr/bin/env bash
# Build the clipstream image (the Dockerfile, unchanged in meaning) with Debian's podman, where no registry
# serves a Python base image: the base is made here from Debian's own packages (debootstrap bookworm, which
# ships Python 3.11, as python:3.11-slim does) and imported once; podman keeps the build's layers, so a
# rebuild redoes only what changed. The host's uv cache is lent to the build (wheels are not downloaded
# again). Elsewhere: `docker build .` (or `--build-arg BASE=...`) builds the same image from python:3.11-slim.
#   ./scripts/build-image.sh [TAG]        (default localhost/clipstream:dev; CLIPSTREAM_IMAGE_BASE to choose a base)
set -euo pipefail
cd "$(dirname "$0")/.."
TAG=${1:-localhost/clipstream:dev}
BASE=${CLIPSTREAM_IMAGE_BASE:-localhost/clipstream-python:3.11-bookworm}
# crun refuses this kernel's hybrid cgroups and rlimits cannot be raised here (DESIGN.md): runc, cgroupfs, set limits
PODMAN=(podman --runtime runc --cgroup-manager=cgroupfs)
LIMITS=(--ulimit nofile=4096:4096 --ulimit nproc=4096:4096)

if [[ $BASE == localhost/clipstream-python:* ]] && ! "${PODMAN[@]}" image exists "$BASE"; then
  command -v debootstrap >/dev/null || { echo "debootstrap missing: apt-get install podman runc debootstrap" >&2; exit 1; }
  root=$(mktemp -d /var/tmp/clipstream-base.XXXXXX)
  trap 'rm -rf "$root"' EXIT
  echo "making $BASE with debootstrap (once)"
  # debootstrap resolves no virtual packages: python3.11-venv's distutils is named as python3-distutils
  packages=python3,python3-distutils,python3-lib2to3,python3.11-venv,python3-pip-whl,python3-setuptools-whl
  packages+=,libpython3.11,ca-certificates,libstdc++6,zlib1g
  debootstrap --variant=minbase --include="$packages" bookworm "$root" http://deb.debian.org/debian \
    >"$root.log" 2>&1 || { tail -20 "$root.log" >&2; exit 1; }
  rm -f "$root.log"
  ln -sf /usr/bin/python3.11 "$root/usr/local/bin/python"   # where python:3.11-slim has it
  ln -sf /usr/bin/python3.11 "$root/usr/local/bin/python3"
  rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
  # this machine's own certificate authorities (an egress proxy's), trusted as the host trusts them
  if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
    cp /usr/local/share/ca-certificates/*.crt "$root/usr/local/share/ca-certificates/"
    chroot "$root" update-ca-certificates >/dev/null
  fi
  bundle=/etc/ssl/certs/ca-certificates.crt
  tar -C "$root" -c . | "${PODMAN[@]}" import --change 'CMD ["python3"]' --change "ENV LANG=C.UTF-8" \
    --change "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
    --change "ENV SSL_CERT_FILE=$bundle" --change "ENV PIP_CERT=$bundle" --change "ENV REQUESTS_CA_BUNDLE=$bundle" \
    - "$BASE" >/dev/null
fi

uv_cache=${UV_CACHE_DIR:-$HOME/.cache/uv}
mkdir -p "$uv_cache"
"${PODMAN[@]}" build --network=host "${LIMITS[@]}" --layers --build-arg BASE="$BASE" \
  --volume "$uv_cache:/root/.cache/uv" -t "$TAG" .
echo "built $TAG"
