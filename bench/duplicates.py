"""Near-duplicate precision/recall per transform, on altered copies of the shared clips.

Run: `.venv/bin/python -m bench.duplicates [--videos DIR] [--model PATH]`. Every shared clip is the
catalogue; its copies (re-encoded at 150 kb/s, half size, centre crop 80%, letterboxed, mirrored, the first
quarter trimmed) and compilations of three clips are the queries, and so is each original against the
catalogue without itself (unrelated clips: anything found there is a false duplicate). Clips go through the
product's decoder and are embedded in-process by the product's loader; the decision is the stage's own
(`services.duplicates.match.judge`). The baseline is what Immich-style single-thumbnail matching calls a
duplicate: the best pair of segment thumbnails above the same threshold, with no temporal evidence.
"""

from __future__ import annotations

import argparse
import base64
import random
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from services.common.clip.loader import LoadedClip, load_clip
from services.common.settings import CommonSettings
from services.common.vectors import mean_vector
from services.duplicates.blank import informative
from services.duplicates.match import MatchConfig, Pair, Segment, judge
from services.duplicates.settings import DuplicatesSettings
from services.media.decode import DecodeOptions, decode_video
from services.media.errors import DecodeError
from services.media.images import jpeg_to_pixels, thumbnail
from services.media.variants import TRANSFORMS, compilation, variant

SHARED = Path(__file__).resolve().parents[2] / "shared" / "videos"


@dataclass
class Video:
    segments: list[Segment]
    vectors: np.ndarray  # (segments, dim), normalised


def embed(path: Path, clip: LoadedClip, min_detail: float) -> Video:
    decoded = decode_video(path, DecodeOptions())
    segments, vectors = [], []
    for seg in decoded.segments:
        pixels = np.stack([jpeg_to_pixels(k.jpeg) for k in seg.keyframes]) if len(seg.keyframes) == 1 else None
        frames = (
            [clip.embed_pixels(jpeg_to_pixels(k.jpeg)[None]) for k in seg.keyframes]
            if pixels is None
            else [clip.embed_pixels(pixels)]
        )
        vectors.append(mean_vector(np.concatenate(frames)))
        thumb = base64.b64encode(thumbnail(seg.keyframes[len(seg.keyframes) // 2].jpeg)).decode()
        segments.append(Segment(seg.index, seg.start_s, seg.end_s, informative(thumb, min_detail)))
    return Video(segments, np.asarray(vectors, dtype=np.float32))


def verdicts(query: Video, catalogue: dict[str, Video], config: MatchConfig, skip: str = "") -> dict[str, str]:
    """What the stage decides against each catalogued video, and the single-thumbnail baseline's."""
    found: dict[str, str] = {}
    for name, other in catalogue.items():
        if name == skip:
            continue
        sims = query.vectors @ other.vectors.T
        rows, cols = np.nonzero(sims >= config.segment_threshold)
        pairs = [Pair(int(i), int(j), float(sims[i, j])) for i, j in zip(rows, cols, strict=True)]
        verdict = judge(query.segments, other.segments, pairs, config)
        if verdict is not None:
            found[name] = verdict.kind
    return found


def baseline(query: Video, catalogue: dict[str, Video], threshold: float, skip: str = "") -> set[str]:
    return {n for n, o in catalogue.items() if n != skip and float((query.vectors @ o.vectors.T).max()) >= threshold}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--videos", type=Path, default=SHARED)
    parser.add_argument("--model", default="")
    parser.add_argument("--compilations", type=int, default=6)
    parser.add_argument("--threshold", type=float, default=None, help="segment cosine; default: the model's")
    args = parser.parse_args()
    settings = DuplicatesSettings()
    clip = load_clip(args.model or CommonSettings().resolved_clip_model())
    config = settings.match_config(args.threshold if args.threshold is not None else settings.threshold_for(clip.ref))
    print(f"model {clip.ref.name}:{clip.ref.version}, segment threshold {config.segment_threshold:.3f}")
    started = time.perf_counter()
    catalogue: dict[str, Video] = {}
    for path in sorted(p for p in args.videos.iterdir() if p.suffix != ".md"):
        try:
            catalogue[path.name] = embed(path, clip, settings.min_detail)
        except DecodeError as exc:
            print(f"  skipped {path.name}: {exc.reason}")
    rows: dict[str, list[tuple[set[tuple[str, str]], dict[str, str], set[str]]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in catalogue:
            for kind in TRANSFORMS:
                copy = variant(args.videos / name, kind, Path(tmp) / f"{kind}-{name}.mp4")
                query = embed(copy, clip, settings.min_detail)
                rows.setdefault(kind, []).append(
                    (
                        {(name, "duplicate")},
                        verdicts(query, catalogue, config),
                        baseline(query, catalogue, config.segment_threshold),
                    )
                )
        rng = random.Random(0)
        long_enough = [n for n, v in catalogue.items() if sum(s.informative for s in v.segments)]
        for c in range(args.compilations):
            picked = rng.sample(long_enough, 3)
            path = compilation([args.videos / n for n in picked], Path(tmp) / f"compilation-{c}.mp4")
            query = embed(path, clip, settings.min_detail)
            expected = {(n, "contains") for n in picked}
            rows.setdefault("compilation", []).append(
                (expected, verdicts(query, catalogue, config), baseline(query, catalogue, config.segment_threshold))
            )
    for name, video in catalogue.items():  # unrelated: each original against the others
        rows.setdefault("unrelated", []).append(
            (
                set(),
                verdicts(video, catalogue, config, skip=name),
                baseline(video, catalogue, config.segment_threshold, skip=name),
            )
        )
    print(f"{'transform':12s} {'queries':>7s} {'recall':>7s} {'precision':>9s} | baseline recall precision")
    total = {"tp": 0, "fp": 0, "fn": 0, "btp": 0, "bfp": 0, "bfn": 0}
    for kind, results in rows.items():
        tp = sum(len(exp & set(found.items())) for exp, found, _ in results)
        fp = sum(len(set(found.items()) - exp) for exp, found, _ in results)
        fn = sum(len(exp - set(found.items())) for exp, found, _ in results)
        btp = sum(len({n for n, _ in exp} & base) for exp, _, base in results)
        bfp = sum(len(base - {n for n, _ in exp}) for exp, _, base in results)
        bfn = sum(len({n for n, _ in exp} - base) for exp, _, base in results)
        for key, value in zip(total, (tp, fp, fn, btp, bfp, bfn), strict=True):
            total[key] += value
        print(
            f"{kind:12s} {len(results):7d} {_ratio(tp, tp + fn):>7s} {_ratio(tp, tp + fp):>9s} | "
            f"{_ratio(btp, btp + bfn):>15s} {_ratio(btp, btp + bfp):>9s}   (false: {fp}, baseline {bfp})"
        )
    t = total
    print(
        f"{'all':12s} {'':7s} {_ratio(t['tp'], t['tp'] + t['fn']):>7s} {_ratio(t['tp'], t['tp'] + t['fp']):>9s} | "
        f"{_ratio(t['btp'], t['btp'] + t['bfn']):>15s} {_ratio(t['btp'], t['btp'] + t['bfp']):>9s}"
    )
    print(f"({time.perf_counter() - started:.0f} s)")


def _ratio(a: int, b: int) -> str:
    return f"{a / b:.3f}" if b else "-"


if __name__ == "__main__":
    main()
