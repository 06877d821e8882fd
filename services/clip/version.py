"""A model's version is the hash of its weights. Kept apart from the loader (which needs torch) so the stages
that only name a model (thresholds, collections) start without importing torch."""

from __future__ import annotations

import hashlib
from pathlib import Path


def weights_version(path: Path) -> str:
    """Version = hash of the weights, so a changed checkpoint can never share a collection with the old one."""
    files = (
        [path]
        if path.is_file()
        else sorted(p for p in path.iterdir() if p.suffix in {".safetensors", ".bin", ".pt", ".pth"})
    )
    h = hashlib.sha256()
    for f in files:
        with f.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()[:12]
