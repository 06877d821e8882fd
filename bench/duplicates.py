"""Near-duplicate precision/recall per transform, on altered copies of the shared clips, for each kind of
evidence the stage can weigh: the served model's cosines alone, the frames' perceptual hashes alone, and both
fused (the default).

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
import pickle
import random
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from bench.common import recorded
from services.clip.loader import LoadedClip, load_clip
from services.clip.toy.world import all_scenes
from services.common.fingerprints import KeyframeFingerprint, parse_segment, segment_text
from services.common.settings import CommonSettings
from services.common.vectors import mean_vector
from services.duplicates.blank import informative
from services.duplicates.evidence import EvidenceConfig, Mode, evidence
from services.duplicates.match import MatchConfig, Segment, judge
from services.duplicates.settings import DuplicatesSettings
from services.media.decode import DecodeOptions, decode_video
from services.media.errors import DecodeError
from services.media.images import jpeg_to_pixels, thumbnail
from services.media.synthetic import write_world_clip
from services.media.variants import TRANSFORMS, compilation, variant

SHARED = Path(__file__).resolve().parents[2] / "shared" / "videos"


@dataclass
class Video:
    segments: list[Segment]
    vectors: np.ndarray  # (segments, dim), normalised
    prints: dict[int, list[KeyframeFingerprint]]  # segment index -> its frames' fingerprints
    print_bytes: int  # of the segments' fingerprints fields, as stored
    duration_s: float
    decode_s: float  # decoding (with fingerprints) and embedding


def embed(path: Path, clip: LoadedClip, min_detail: float) -> Video:
    started = time.perf_counter()
    decoded = decode_video(path, DecodeOptions())
    segments, vectors, prints, stored = [], [], {}, 0
    for seg in decoded.segments:
        text = segment_text(seg.fingerprints)
        stored += len(text)
        prints[seg.index] = [found for _, found in parse_segment(text)]  # as stored
        pixels = np.stack([jpeg_to_pixels(k.jpeg) for k in seg.keyframes]) if len(seg.keyframes) == 1 else None
        frames = (
            [clip.embed_pixels(jpeg_to_pixels(k.jpeg)[None]) for k in seg.keyframes]
            if pixels is None
            else [clip.embed_pixels(pixels)]
        )
        vectors.append(mean_vector(np.concatenate(frames)))
        thumb = base64.b64encode(thumbnail(seg.keyframes[len(seg.keyframes) // 2].jpeg)).decode()
        segments.append(Segment(seg.index, seg.start_s, seg.end_s, informative(thumb, min_detail)))
    vectors_array = np.asarray(vectors, dtype=np.float32)
    return Video(segments, vectors_array, prints, stored, decoded.probe.duration_s, time.perf_counter() - started)


def storage(catalogue: dict[str, Video]) -> None:
    """What fingerprints add to Milvus per hour of video: the segment rows' text field and the index's rows
    (two 64-d float vectors of a segment's middle frame, its pk, tenant, video id and index)."""
    hours = sum(v.duration_s for v in catalogue.values()) / 3600
    field = sum(v.print_bytes for v in catalogue.values())
    index_rows = 2 * sum(1 for v in catalogue.values() for found in v.prints.values() if found)
    index = index_rows * (64 * 4 + 64 + 16 + 40 + 4)  # vector, pk, tenant, video id, segment index
    print(
        f"\nfingerprint storage over {hours * 3600:.0f} video-seconds: segment rows {field / hours / 1024:.0f} KiB "
        f"per video-hour, fingerprint index {index / hours / 1024:.0f} KiB per video-hour ({index_rows / hours:.0f} "
        "rows; raw sizes, before Milvus's own overhead)"
    )


def verdicts(
    query: Video, catalogue: dict[str, Video], weigh: EvidenceConfig, config: MatchConfig, skip: str = ""
) -> dict[str, str]:
    """What the stage decides against each catalogued video (every one a candidate: brute force)."""
    found: dict[str, str] = {}
    for name, other in catalogue.items():
        if name == skip:
            continue
        sims = query.vectors @ other.vectors.T
        index_q = [s.index for s in query.segments]
        index_o = [s.index for s in other.segments]
        cosines = {
            (index_q[i], index_o[j]): float(sims[i, j]) for i in range(len(index_q)) for j in range(len(index_o))
        }
        pairs = evidence(cosines, query.prints, other.prints, weigh)
        verdict = judge(query.segments, other.segments, pairs, config)
        if verdict is not None:
            found[name] = verdict.kind
    return found


def baseline(query: Video, catalogue: dict[str, Video], threshold: float, skip: str = "") -> set[str]:
    return {n for n, o in catalogue.items() if n != skip and float((query.vectors @ o.vectors.T).max()) >= threshold}


Query = tuple[str, set[tuple[str, str]], Video, str]  # (transform, expected verdicts, video, catalogue name to skip)


def queries(args: argparse.Namespace, clip: LoadedClip, min_detail: float, catalogue: dict[str, Video]) -> list[Query]:
    found: list[Query] = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in catalogue:
            for kind in TRANSFORMS:
                copy = variant(args.videos / name, kind, Path(tmp) / f"{kind}-{name}.mp4")
                found.append((kind, {(name, "duplicate")}, embed(copy, clip, min_detail), ""))
        rng = random.Random(0)
        names = sorted(catalogue)
        for c in range(args.compilations):
            picked = rng.sample(names, 3)
            path = compilation([args.videos / n for n in picked], Path(tmp) / f"compilation-{c}.mp4")
            found.append(("compilation", {(n, "contains") for n in picked}, embed(path, clip, min_detail), ""))
    found += [("unrelated", set(), video, name) for name, video in catalogue.items()]  # each against the others
    return found


MODES: tuple[Mode, ...] = ("clip", "fingerprints", "fused")


def table(threshold: float, settings: DuplicatesSettings, catalogue: dict[str, Video], asked: list[Query]) -> None:
    config = settings.match_config()
    print(f"\nsegment threshold {threshold:.3f} (model), {settings.match_bits} bits (fingerprints)")
    print(f"{'transform':12s} {'queries':>7s} | " + " | ".join(f"{m:>12s} rec  prec" for m in MODES) + " | baseline")
    counts: dict[str, dict[str, list[int]]] = {}
    for kind, expected, video, skip in asked:
        per = counts.setdefault(kind, {})
        for mode in MODES:
            weigh = replace(settings.evidence_config(threshold), mode=mode)
            found = set(verdicts(video, catalogue, weigh, config, skip).items())
            c = per.setdefault(mode, [0, 0, 0, 0])
            for i, value in enumerate((1, len(expected & found), len(found - expected), len(expected - found))):
                c[i] += value
        base = baseline(video, catalogue, threshold, skip)
        names = {n for n, _ in expected}
        c = per.setdefault("baseline", [0, 0, 0, 0])
        for i, value in enumerate((1, len(names & base), len(base - names), len(names - base))):
            c[i] += value
    total: dict[str, list[int]] = {}
    for kind, per in counts.items():
        for name, c in per.items():
            total[name] = [a + b for a, b in zip(total.get(name, [0, 0, 0, 0]), c, strict=True)]
        _line(kind, per)
    _line("all", total)
    print("(rec: recall of the expected verdicts; prec: precision; false verdicts in brackets)")


def _line(kind: str, per: dict[str, list[int]]) -> None:
    cells = []
    for mode in (*MODES, "baseline"):
        _, tp, fp, fn = per[mode]
        cells.append(f"{_ratio(tp, tp + fn):>7s} {_ratio(tp, tp + fp):>5s} ({fp:2d})")
    print(f"{kind:12s} {per['fused'][0]:7d} | " + " | ".join(cells))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--videos", type=Path, default=SHARED)
    parser.add_argument("--model", default="")
    parser.add_argument("--compilations", type=int, default=6)
    parser.add_argument("--thresholds", type=float, nargs="*", help="segment cosines; default: the model's")
    parser.add_argument(
        "--world", type=int, default=0, help="instead of the shared clips: N generated toy-world clips of 3 shots"
    )
    parser.add_argument("--cache", type=Path, help="keep decoded+embedded clips here (pickle) for reruns")
    parser.add_argument("--centre", action="store_true", help="experiment: cosines of catalogue-mean-centred vectors")
    args = parser.parse_args()
    settings = DuplicatesSettings()
    clip = load_clip(args.model or CommonSettings().resolved_clip_model())
    print(f"model {clip.ref.name}:{clip.ref.version}")
    started = time.perf_counter()
    if args.world:
        args.videos = Path(tempfile.mkdtemp(prefix="clipstream-world-"))
        scenes = all_scenes()
        random.Random(7).shuffle(scenes)
        for i in range(args.world):
            write_world_clip(args.videos / f"world-{i:03d}.mp4", scenes[3 * i : 3 * i + 3], seed=500 + i)
    if args.cache and args.cache.exists():
        catalogue, asked = pickle.loads(args.cache.read_bytes())
    else:
        catalogue = {}
        for path in sorted(p for p in args.videos.iterdir() if p.suffix != ".md"):
            try:
                catalogue[path.name] = embed(path, clip, settings.min_detail)
            except DecodeError as exc:
                print(f"  skipped {path.name}: {exc.reason}")
        asked = queries(args, clip, settings.min_detail, catalogue)
        if args.cache:
            args.cache.write_bytes(pickle.dumps((catalogue, asked)))
    if args.centre:
        mean = np.concatenate([v.vectors for v in catalogue.values()]).mean(axis=0)
        for video in [*catalogue.values(), *(q[2] for q in asked)]:
            centred = video.vectors - mean
            video.vectors = centred / np.linalg.norm(centred, axis=1, keepdims=True)
    print(f"{len(catalogue)} clips, {len(asked)} queries decoded and embedded in {time.perf_counter() - started:.0f} s")
    storage(catalogue)
    for threshold in args.thresholds or [settings.threshold_for(clip.ref)]:
        table(threshold, settings, catalogue, asked)


def _ratio(a: int, b: int) -> str:
    return f"{a / b:.3f}" if b else "-"


if __name__ == "__main__":
    with recorded("duplicates", "duplicates_world" if "--world" in sys.argv else "duplicates"):
        main()
