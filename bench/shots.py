"""Shot-boundary accuracy: our detector against PySceneDetect's ContentDetector.

Run: `.venv/bin/python -m bench.shots`. On generated clips with known hard cuts and fades (and panning
motion that must not count), prints precision and recall for both detectors; on the shared clips,
which have no ground truth, prints how far the two agree, taking PySceneDetect as the reference.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import av.logging
import numpy as np
from scenedetect import ContentDetector, SceneManager, open_video

from bench.common import SHARED_VIDEOS, recorded
from services.media.decode import DecodeOptions, decode_video
from services.media.segments import SegmentPolicy
from services.media.shots import match_boundaries
from services.media.synthetic import write_clip

TOLERANCE_S = 0.5


def ours(path: Path) -> list[float]:
    decoded = decode_video(path, DecodeOptions(segments=SegmentPolicy(max_segment_s=1e9)))
    return [s.start_s for s in decoded.segments[1:]]


def pyscenedetect(path: Path) -> list[float]:
    video = open_video(str(path), backend="pyav")
    manager = SceneManager()
    manager.add_detector(ContentDetector())
    manager.detect_scenes(video)
    return [start.seconds for start, _ in manager.get_scene_list()[1:]]


def synthetic(folder: Path, count: int) -> list[tuple[Path, list[float]]]:
    out = []
    for seed in range(count):
        rng = np.random.default_rng(1000 + seed)
        cuts = sorted(float(c) for c in np.round(np.arange(2.0, 26.0, 3.0) + rng.uniform(-0.8, 0.8, 8), 2))
        fades = (28.0,)
        path = write_clip(
            folder / f"known-{seed}.mp4",
            seconds=31.0,
            fps=24,
            size=(320, 180),
            seed=seed,
            cuts=cuts,
            fades=fades,
            pan_px=int(rng.integers(0, 10)),
        )
        out.append((path, [*cuts, *fades]))
    return out


def report(name: str, counts: tuple[int, int, int], seconds: float) -> None:
    tp, fp, fn = counts
    precision = tp / (tp + fp) if tp + fp else 1.0
    recall = tp / (tp + fn) if tp + fn else 1.0
    print(f"  {name:16s} precision {precision:.3f}  recall {recall:.3f}  (tp {tp}, fp {fp}, fn {fn})  {seconds:.1f}s")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clips", type=int, default=10, help="generated clips with known cuts")
    args = parser.parse_args()
    av.logging.set_level(av.logging.PANIC)  # FFmpeg's per-frame warnings on odd shared clips
    detectors = {"ours": ours, "PySceneDetect": pyscenedetect}
    with tempfile.TemporaryDirectory() as tmp:
        known = synthetic(Path(tmp), args.clips)
        total = sum(len(t) for _, t in known)
        print(
            f"generated clips with known boundaries: {len(known)} clips, {total} boundaries (cuts + fades), "
            f"tolerance {TOLERANCE_S}s"
        )
        for name, detect in detectors.items():
            counts = np.zeros(3, dtype=int)
            start = time.perf_counter()
            for path, truth in known:
                counts += match_boundaries(detect(path), truth, TOLERANCE_S)
            report(name, (int(counts[0]), int(counts[1]), int(counts[2])), time.perf_counter() - start)
    if not SHARED_VIDEOS.is_dir():
        return
    print("\nshared clips (no ground truth): our boundaries scored against PySceneDetect's")
    counts = np.zeros(3, dtype=int)
    for path in sorted(p for p in SHARED_VIDEOS.iterdir() if p.suffix != ".md"):
        mine, ref = ours(path), pyscenedetect(path)
        if mine or ref:
            print(
                f"  {path.name[:44]:44s} ours {[round(t, 1) for t in mine]}  pyscenedetect {[round(t, 1) for t in ref]}"
            )
        counts += match_boundaries(mine, ref, TOLERANCE_S)
    report("agreement", (int(counts[0]), int(counts[1]), int(counts[2])), 0.0)


if __name__ == "__main__":
    with recorded("shots"):
        main()
