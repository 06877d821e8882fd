"""On-screen text: PP-OCR keyframes/s per core and per recognition batch, and the sentence encoder's texts/s.

Run: `.venv/bin/python -m bench.ocr [--frames N]`. The keyframes are the product decoder's (256-px short side, as
the text stage receives them) from the shared clips, half of them with a caption rendered over the footage
(most real keyframes hold no text: detection alone then runs). The baseline is rapidocr's own default engine
(all cores, no bounds) on the same pictures; each of ours is the stage's `TextReader` (one engine a worker,
bounded) with its threads and recognition batch, as a ratio to the baseline.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from itertools import islice

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from bench.common import recorded
from bench.duplicates import SHARED
from services.media.decode import DecodeOptions, decode_video
from services.media.images import jpeg_to_pixels
from services.text import sentences
from services.text.ocr import TextReader

CAPTIONS = ["SLOW MOTION WATERFALL", "GOLDEN HOUR HARBOUR", "NIGHT MARKET TOKYO", "BREAKING NEWS: RIVER FLOODS"]


def keyframes(count: int) -> list[np.ndarray]:
    found: list[np.ndarray] = []
    for clip in sorted(p for p in SHARED.iterdir() if p.suffix != ".md"):
        for segment in decode_video(clip, DecodeOptions(fingerprint_interval_s=0)).segments:
            found += [jpeg_to_pixels(k.jpeg) for k in segment.keyframes]
    pictures = list(islice((found * (1 + count // max(1, len(found)))), count))
    font = ImageFont.load_default(size=20)
    for i in range(0, len(pictures), 2):  # every other one captioned
        picture = Image.fromarray(pictures[i])
        ImageDraw.Draw(picture).text(
            (12, picture.height - 40),
            CAPTIONS[i // 2 % len(CAPTIONS)],
            font=font,
            fill="white",
            stroke_width=2,
            stroke_fill="black",
        )
        pictures[i] = np.asarray(picture)
    return pictures


def rate(read: Callable[[np.ndarray], object], pictures: list[np.ndarray]) -> float:
    read(pictures[0])  # loads the models
    started = time.perf_counter()
    for picture in pictures:
        read(picture)
    return len(pictures) / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--frames", type=int, default=60)
    args = parser.parse_args()
    pictures = keyframes(args.frames)
    print(
        f"{len(pictures)} keyframes ({sum(p.shape[0] * p.shape[1] for p in pictures) / len(pictures) / 1e3:.0f} "
        f"kpx mean), half captioned; {os.cpu_count()} cores\n"
    )
    from rapidocr import RapidOCR

    default = RapidOCR(params={"Global.log_level": "warning"})
    base = rate(lambda p: default(p[:, :, ::-1]), pictures)
    print(f"{'engine':44s} {'frames/s':>9s} {'per core':>9s} {'ratio':>7s}")
    print(f"{'rapidocr default (all cores, unbounded)':44s} {base:9.2f} {base / (os.cpu_count() or 1):9.2f} {1:7.2f}x")
    for threads in (1, 2):
        for batch in (1, 6, 16):
            reader = TextReader(threads=threads, rec_batch=batch)
            found = rate(reader.read, pictures)
            name = f"TextReader, {threads} thread{'s' if threads > 1 else ''}, rec batch {batch}"
            print(f"{name:44s} {found:9.2f} {found / threads:9.2f} {found / base:7.2f}x")
    encoder = sentences.SentenceEncoder(sentences.prepare(sentences.default_folder()))
    texts = [CAPTIONS[i % len(CAPTIONS)] + f" {i}" for i in range(256)]
    for batch in (1, 32):
        started = time.perf_counter()
        for i in range(0, len(texts), batch):
            encoder.embed(texts[i : i + batch])
        per_s = len(texts) / (time.perf_counter() - started)
        print(f"sentence encoder, batch {batch:2d}: {per_s:7.0f} texts/s (1 thread)")


if __name__ == "__main__":
    with recorded("ocr"):
        main()
