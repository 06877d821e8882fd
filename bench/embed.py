"""Embedding throughput: the embedder's Triton path against the same model called in-process.

Run: `.venv/bin/python -m bench.embed [--model vit-b-32|tiny] [--images N]`. Starts its own Triton on
loopback (ports 38000-38002), serving a seeded random CLIP with the chosen architecture (random
weights cost the same FLOPs as trained ones). Every path starts from the same JPEG keyframes, as the
embedder receives them. Prints images/s for in-process torch (the baseline), for the embedder's
client over gRPC at several batch sizes, and over HTTP / gRPC with and without system shared memory,
each with its ratio to the baseline.
"""

from __future__ import annotations

import argparse
import io
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from bench.common import recorded
from services.clip.loader import load_clip
from services.clip.random_model import TINY_CONFIG, write_random_clip
from services.common.triton import ClipClient
from services.media.images import jpeg_to_pixels

VIT_B_32: dict[str, Any] = {
    "embed_dim": 512,
    "vision_cfg": {"image_size": 224, "layers": 12, "width": 768, "patch_size": 32},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 512, "heads": 8, "layers": 12},
}
MODELS = {"vit-b-32": VIT_B_32, "tiny": TINY_CONFIG}
PORTS = {"http": 38000, "grpc": 38001, "metrics": 38002}


def keyframes(count: int) -> list[bytes]:
    """Keyframe-sized JPEGs (short side 256), as the decoder emits them."""
    rng = np.random.default_rng(0)
    out = []
    for _ in range(count):
        small = rng.integers(0, 256, (16, 28, 3), dtype=np.uint8)
        img = Image.fromarray(small).resize((455, 256), Image.Resampling.BILINEAR)
        buf = io.BytesIO()
        img.save(buf, format="JPEG", quality=90)
        out.append(buf.getvalue())
    return out


def rate(run: Callable[[list[np.ndarray]], object], jpegs: list[bytes], repeats: int) -> float:
    run([jpeg_to_pixels(jpegs[0])] * 2)  # warm-up: lazy init, first-call allocations
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        run([jpeg_to_pixels(j) for j in jpegs])
        best = min(best, time.perf_counter() - start)
    return len(jpegs) / best


def start_triton(home: Path, model_dir: Path) -> Any:
    os.environ.update(
        {
            "CLIPSTREAM_HOME": str(home),
            "CLIPSTREAM_TRITON_HTTP_URL": f"127.0.0.1:{PORTS['http']}",
            "CLIPSTREAM_TRITON_GRPC_URL": f"127.0.0.1:{PORTS['grpc']}",
            "CLIPSTREAM_STACK_TRITON_METRICS_PORT": str(PORTS["metrics"]),
        }
    )
    from services.stack.settings import StackSettings
    from services.stack.triton import start_triton as start

    settings = StackSettings()
    return start(settings, str(model_dir))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", choices=sorted(MODELS), default="vit-b-32")
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    jpegs = keyframes(args.images)
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = write_random_clip(
            Path(tmp) / "model", seed=0, name=f"bench-{args.model}", config=MODELS[args.model]
        )
        clip = load_clip(str(model_dir))

        def in_process(images: list[np.ndarray]) -> None:
            for start in range(0, len(images), 32):
                group = images[start : start + 32]
                clip.embed_pixels(np.stack(group))

        print(f"model {args.model} (random weights), {args.images} keyframes 455x256 JPEG, best of {args.repeats}")
        base = rate(in_process, jpegs, args.repeats)
        print(f"{'path':44s} {'images/s':>9s} {'vs in-process':>14s}")
        print(f"{'in-process torch, batch 32 (baseline)':44s} {base:9.1f} {1.0:13.2f}x")
        triton = start_triton(Path(tmp) / "home", model_dir)
        try:
            cases: list[tuple[str, dict[str, Any]]] = [
                (f"embedder client, gRPC, batch {b}", {"transport": "grpc", "max_batch": b}) for b in (1, 4, 16, 64)
            ]
            cases += [
                ("embedder client, gRPC + shared memory, b32", {"transport": "grpc", "shared_memory": "system"}),
                ("embedder client, HTTP, batch 32", {"transport": "http"}),
                ("embedder client, HTTP + shared memory, b32", {"transport": "http", "shared_memory": "system"}),
                ("embedder client, gRPC, batch 32, 1 in flight", {"transport": "grpc", "max_in_flight": 1}),
            ]
            for name, options in cases:
                options = {"max_batch": 32, "max_in_flight": 4, **options}
                url = f"127.0.0.1:{PORTS[options['transport']]}"
                client = ClipClient(url, timeout_s=600, **options)
                try:
                    value = rate(client.embed_images, jpegs, args.repeats)
                finally:
                    client.close()
                print(f"{name:44s} {value:9.1f} {value / base:13.2f}x")
        finally:
            triton.stop()


if __name__ == "__main__":
    with recorded("embed"):
        main()
