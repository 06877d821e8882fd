"""Faces: detection cost per keyframe and what faces add to Milvus per video-hour.

Run: `.venv/bin/python -m bench.faces`. The keyframes are the product decoder's from the shared clips (as the
decoder sees them), plus the same keyframes with scikit-image's astronaut pasted in (a face on every one: the
worst case for the crops). Prints detection keyframes/s against the baseline of decoding the keyframe's JPEG
alone (what the decoder already pays per keyframe), faces found, and the faces collection's raw bytes per
video-hour at the toy model's 256-d and a 512-d model; and the on-screen text's raw bytes per video-hour from
the same keyframes read by the OCR stage's reader.
"""

from __future__ import annotations

import json
import time

import numpy as np
from PIL import Image
from skimage import data

from bench.common import recorded
from bench.duplicates import SHARED
from services.media.decode import DecodeOptions, decode_video
from services.media.faces import detect
from services.media.images import jpeg_to_pixels
from services.text.ocr import TextReader

ROW_FIXED = 64 + 16 + 40 + 4 + 4 + 40 + 4  # pk, tenant, video id, segment index, time, box JSON, score


def main() -> None:
    clips = sorted(p for p in SHARED.iterdir() if p.suffix != ".md")
    seconds, jpegs = 0.0, []
    for clip in clips:
        decoded = decode_video(clip, DecodeOptions(fingerprint_interval_s=0))
        seconds += decoded.probe.duration_s
        jpegs += [k.jpeg for s in decoded.segments for k in s.keyframes]
    hours = seconds / 3600
    pictures = [jpeg_to_pixels(j) for j in jpegs]
    face = Image.fromarray(data.astronaut()).crop((140, 30, 310, 200))
    with_face = []
    for p in pictures:
        picture = Image.fromarray(p)
        side = max(24, min(picture.size) // 2)
        picture.paste(face.resize((side, side)), (picture.width - side - 4, 4))
        with_face.append(np.asarray(picture))
    print(f"{len(clips)} clips, {seconds:.0f} video-seconds, {len(pictures)} keyframes (one a segment)\n")
    started = time.perf_counter()
    for j in jpegs:
        jpeg_to_pixels(j)
    base = len(jpegs) / (time.perf_counter() - started)
    print(f"{'step':40s} {'keyframes/s':>12s} {'ratio':>7s} {'faces':>6s}")
    print(f"{'decode the keyframe JPEG (baseline)':40s} {base:12.0f} {1:7.2f}x")
    found: dict[str, int] = {}
    for name, batch in (
        ("detect faces, shared keyframes", pictures),
        ("detect faces, a face pasted on each", with_face),
    ):
        started = time.perf_counter()
        found[name] = sum(len(detect(p)) for p in batch)
        rate = len(batch) / (time.perf_counter() - started)
        print(f"{name:40s} {rate:12.0f} {rate / base:7.2f}x {found[name]:6d}")
    print("\nfaces collection, raw bytes per video-hour (vector + fields, before Milvus's own overhead):")
    for label, count in (
        ("shared clips as they are", found["detect faces, shared keyframes"]),
        ("a face on every keyframe", found["detect faces, a face pasted on each"]),
    ):
        for dim in (256, 512):
            per_hour = count / hours * (dim * 4 + ROW_FIXED)
            print(f"  {label:28s} {dim:4d}-d: {per_hour / 1024:8.0f} KiB ({count / hours:.0f} faces an hour)")
    reader = TextReader()
    lines = [reader.read(p) for p in pictures]
    texts = [ls for ls in lines if ls]
    raw = sum(
        len(" ".join(line.text for line in ls).encode())
        + len(
            json.dumps(
                [{"text": line.text, "box": list(line.box), "confidence": line.confidence, "t": 0.0} for line in ls],
                ensure_ascii=False,
            ).encode()
        )
        + 384 * 4
        + 64
        + 16
        + 40
        + 4
        + 8
        + 32
        for ls in texts
    )
    print(
        f"\non-screen text, raw bytes per video-hour: {raw / hours / 1024:.0f} KiB "
        f"({len(texts)} of {len(pictures)} keyframes with words; words, lines JSON, 384-d vector, fields)"
    )


if __name__ == "__main__":
    with recorded("faces"):
        main()
