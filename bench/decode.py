"""Decoder throughput and memory: our decoder against a plain full PyAV decode of the same files.

Run: `.venv/bin/python -m bench.decode`. Prints video-seconds per wall-second and source frames per
second for each method, and ratios to the plain decode; then peak memory for a 1-minute and a
10-minute 720p clip (each in a fresh process), whose ratio shows whether memory stays flat. Between
them, what the default intra-only deblocking costs the keyframe pictures (PSNR against the exact decode, and
the cosine of their CLIP embeddings), next to what JPEG q90 costs them. The default with and without the
frames' perceptual fingerprints (`services.media.fingerprints`) gives what fingerprinting costs.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import av
import numpy as np
from PIL import Image

from bench.common import clips, peak_rss_mib, recorded
from services.common.settings import CommonSettings
from services.media.decode import DecodeOptions, decode_video
from services.media.segments import SegmentPolicy
from services.media.synthetic import write_clip


def plain_decode(path: Path) -> int:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        return sum(1 for _ in container.decode(stream))


def plain_decode_rgb(path: Path) -> int:
    """What a naive sampler does: decode every frame and convert it to RGB."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        return sum(1 for f in container.decode(stream) if f.to_ndarray(format="rgb24") is not None)


METHODS: dict[str, Callable[[Path], object]] = {
    "pyav plain decode (baseline)": plain_decode,
    "pyav decode + rgb": plain_decode_rgb,
    "ours: shots, every frame, deblocked": lambda p: decode_video(
        p, DecodeOptions(reference_frames_only=False, skip_deblocking=False)
    ),
    "ours: shots, reference frames, exact": lambda p: decode_video(p, DecodeOptions(skip_deblocking=False)),
    "ours: + intra-only deblocking (default)": lambda p: decode_video(p, DecodeOptions()),
    "ours: default without fingerprints": lambda p: decode_video(p, DecodeOptions(fingerprint_interval_s=0)),
    "ours: fixed 4 s, keyframes only": lambda p: decode_video(
        p, DecodeOptions(segments=SegmentPolicy(mode="fixed"), keyframes_only=True)
    ),
}


def throughput(files: list[Path], repeats: int) -> None:
    facts = {p: (decode_video(p, DecodeOptions()).probe.duration_s, plain_decode(p)) for p in files}
    seconds = sum(d for d, _ in facts.values())
    frames = sum(n for _, n in facts.values())
    print(f"{len(files)} clips, {seconds:.1f} video-seconds, {frames} frames; best of {repeats} rounds\n")
    # rounds interleave the methods, so a slow spell of this shared machine hits all of them alike
    best = dict.fromkeys(METHODS, float("inf"))
    for _ in range(repeats):
        for name, method in METHODS.items():
            start = time.perf_counter()
            for path in files:
                method(path)
            best[name] = min(best[name], time.perf_counter() - start)
    print(f"{'method':40s} {'wall s':>8s} {'video-s/s':>10s} {'frames/s':>10s} {'ratio':>7s}")
    base = best[next(iter(METHODS))]
    for name, wall in best.items():
        print(f"{name:40s} {wall:8.2f} {seconds / wall:10.1f} {frames / wall:10.0f} {base / wall:6.2f}x")


def _pixels(jpeg: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(jpeg)).convert("RGB"))


def fidelity(files: list[Path], model: str) -> None:
    """What skipping the deblocking costs the keyframe pictures, next to what their JPEG encoding costs: PSNR
    against the exact picture, and the cosine between the CLIP embeddings of the two."""
    from services.clip.loader import load_clip  # here: the memory probe's child must not pay for torch

    clip = load_clip(model, device="cpu")
    scores: dict[str, tuple[list[float], list[float]]] = {"intra-only deblocking": ([], []), "JPEG q90": ([], [])}
    for path in files:
        reference = decode_video(path, DecodeOptions(skip_deblocking=False, jpeg_quality=100))
        fast = decode_video(path, DecodeOptions(jpeg_quality=100))
        stored = decode_video(path, DecodeOptions(skip_deblocking=False))
        for ref, a, b in zip(reference.segments, fast.segments, stored.segments, strict=True):
            for r, x, y in zip(ref.keyframes, a.keyframes, b.keyframes, strict=True):
                for name, other in (("intra-only deblocking", x), ("JPEG q90", y)):
                    exact, approx = _pixels(r.jpeg), _pixels(other.jpeg)
                    mse = float(((exact.astype(np.float64) - approx) ** 2).mean())
                    e = clip.embed_pixels(np.stack([exact, approx]))
                    scores[name][0].append(99.0 if mse == 0 else 10 * math.log10(255**2 / mse))
                    scores[name][1].append(float(e[0] @ e[1]))
    count = len(scores["JPEG q90"][0])
    print(f"\nkeyframe pictures ({count}) against the exact decode (JPEG q100); CLIP: {clip.ref.name}")
    for name, (psnr, cosine) in scores.items():
        print(
            f"  {name:22s} PSNR dB min {min(psnr):5.1f} p10 {np.percentile(psnr, 10):5.1f} median "
            f"{np.median(psnr):5.1f}   embedding cosine min {min(cosine):.4f} median {np.median(cosine):.4f}"
        )


def memory_child(path: str) -> None:
    decoded = decode_video(Path(path), DecodeOptions())
    print(json.dumps({"peak_rss_mib": peak_rss_mib(), "segments": len(decoded.segments)}))


def memory(scratch: Path) -> None:
    print("\npeak memory of one decode (fresh process), 1280x720 at 10 fps, a cut every 20 s")
    results = {}
    for minutes in (1, 10):
        cuts = tuple(float(c) for c in range(20, minutes * 60, 20))
        path = write_clip(scratch / f"{minutes}min.mp4", seconds=minutes * 60, fps=10, size=(1280, 720), cuts=cuts)
        out = subprocess.run(
            [
                sys.executable,
                "-c",
                "import sys; from bench.decode import memory_child; memory_child(sys.argv[1])",
                str(path),
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        result = results[minutes] = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"  {minutes:2d} min: peak RSS {result['peak_rss_mib']:.0f} MiB, {result['segments']} segments")
    print(f"  10 min / 1 min peak RSS ratio: {results[10]['peak_rss_mib'] / results[1]['peak_rss_mib']:.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--model", help="CLIP for the embedding cosines (default: CLIPSTREAM_CLIP_MODEL or the toy)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        files = clips(Path(tmp))
        throughput(files, args.repeats)
        fidelity(files, args.model or CommonSettings().resolved_clip_model())
        if not args.skip_memory:
            memory(Path(tmp))


if __name__ == "__main__":
    with recorded("decode"):
        main()
