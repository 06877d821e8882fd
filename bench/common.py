"""What every benchmark needs: the clips to run on, and a resource-usage probe."""

from __future__ import annotations

import resource
from pathlib import Path

from services.media.synthetic import write_clip

SHARED_VIDEOS = Path(__file__).resolve().parents[2] / "shared" / "videos"


def clips(scratch: Path) -> list[Path]:
    """The shared clips, or generated ones when they are absent."""
    if SHARED_VIDEOS.is_dir():
        return sorted(p for p in SHARED_VIDEOS.iterdir() if p.is_file() and p.suffix != ".md")
    return [
        write_clip(scratch / f"gen-{i}.mp4", seconds=20.0, fps=25, size=(640, 360), seed=i, cuts=(7.0, 13.0))
        for i in range(4)
    ]


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
