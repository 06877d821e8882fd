"""Quality of the toy-world CLIP, against the random-weight model of the same shape as baseline.

Run: `.venv/bin/python -m bench.toy_clip [--model PATH]`. Both models go through the product's loader.
Prints (1) recall@1 image→text and text→image among the held-out caption combinations, never seen in
training, on frames rendered like video frames (4:3, centre-cropped by the model); (2) the score a
transformed copy of a generated clip gets against its original — re-encoded at a low bitrate, centre
crop 80%, half size — against the best score of an unrelated generated clip, as a margin. Clips are
decoded and keyframed by the product's decoder; a clip's score is the mean over its segments of the
best matching segment of the other clip.
"""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Callable
from pathlib import Path

import av
import numpy as np

from bench.common import recorded
from services.clip.loader import LoadedClip, load_clip
from services.clip.random_model import write_random_clip
from services.clip.toy.train import TOY_CONFIG
from services.clip.toy.world import Scene, all_scenes, layout, render, split_scenes
from services.common.settings import CommonSettings
from services.media.decode import DecodeOptions, decode_video
from services.media.images import jpeg_to_pixels
from services.media.synthetic import write_world_clip

Transform = Callable[[np.ndarray], np.ndarray]
COPIES: dict[str, tuple[Transform, int]] = {  # transform of each frame, x264 CRF
    "reencode_crf40": (lambda f: f, 40),
    "crop_80": (lambda f: f[f.shape[0] // 10 : -(f.shape[0] // 10), f.shape[1] // 10 : -(f.shape[1] // 10)], 23),
    "half_size": (lambda f: f[::2, ::2], 23),
}


def heldout_recall(clip: LoadedClip, scenes: list[Scene], renders: int = 3) -> tuple[float, float]:
    text = clip.embed_texts([s.caption for s in scenes])
    i2t, t2i = [], []
    for r in range(renders):
        frames = np.stack([render(s, layout(s, 7919 * r + i), 160, 120, t=1.0) for i, s in enumerate(scenes)])
        sims = clip.embed_pixels(frames) @ text.T
        truth = np.arange(len(scenes))
        i2t.append(float((sims.argmax(1) == truth).mean()))
        t2i.append(float((sims.argmax(0) == truth).mean()))
    return float(np.mean(i2t)), float(np.mean(t2i))


def transcode(src: Path, dst: Path, transform: Transform, crf: int) -> Path:
    with av.open(str(src)) as inp, av.open(str(dst), "w") as out:
        frames = [transform(f.to_ndarray(format="rgb24")) for f in inp.decode(video=0)]
        h, w = frames[0].shape[:2]
        stream = out.add_stream("libx264", rate=12, options={"crf": str(crf)})
        assert isinstance(stream, av.VideoStream)
        stream.width, stream.height, stream.pix_fmt = w - w % 2, h - h % 2, "yuv420p"
        for f in frames:
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(f[: h - h % 2, : w - w % 2]), format="rgb24")
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return dst


def clip_vectors(clip: LoadedClip, path: Path) -> np.ndarray:
    decoded = decode_video(path, DecodeOptions())
    pixels = [jpeg_to_pixels(k.jpeg) for s in decoded.segments for k in s.keyframes[:1]]
    return np.concatenate([clip.embed_pixels(p[None]) for p in pixels])


def clip_score(a: np.ndarray, b: np.ndarray) -> float:
    return float((a @ b.T).max(axis=1).mean())


def margins(clip: LoadedClip, originals: list[Path], copies: dict[str, list[Path]]) -> dict[str, float]:
    base = [clip_vectors(clip, p) for p in originals]
    dup = [clip_score(clip_vectors(clip, c), base[i]) for paths in copies.values() for i, c in enumerate(paths)]
    unrelated = [clip_score(base[i], base[j]) for i in range(len(base)) for j in range(len(base)) if i != j]
    return {
        "duplicate_min": min(dup),
        "duplicate_median": float(np.median(dup)),
        "unrelated_median": float(np.median(unrelated)),
        "unrelated_max": max(unrelated),
        "margin": min(dup) - max(unrelated),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default=str(CommonSettings().default_model_dir))
    parser.add_argument("--clips", type=int, default=10)
    args = parser.parse_args()
    _, heldout = split_scenes()
    scenes = all_scenes()
    rng = np.random.default_rng(3)
    with tempfile.TemporaryDirectory() as tmp:
        scratch = Path(tmp)
        models = {
            "toy-world CLIP": load_clip(args.model, device="cpu"),
            "random CLIP (baseline)": load_clip(
                str(write_random_clip(scratch / "random", seed=0, config=TOY_CONFIG)), device="cpu"
            ),
        }
        picks = rng.choice(len(scenes), size=(args.clips, 2), replace=False)
        originals = [
            write_world_clip(scratch / f"clip-{i}.mp4", [scenes[a], scenes[b]], seed=100 + i)
            for i, (a, b) in enumerate(picks)
        ]
        copies = {
            name: [transcode(p, scratch / f"{name}-{p.name}", fn, crf) for p in originals]
            for name, (fn, crf) in COPIES.items()
        }
        results = {}
        for label, clip in models.items():
            i2t, t2i = heldout_recall(clip, heldout)
            results[label] = {"i2t": i2t, "t2i": t2i, **margins(clip, originals, copies)}
    print(f"held-out captions: {len(heldout)} combinations never seen in training; chance = {1 / len(heldout):.3f}")
    print(f"generated clips: {args.clips} originals x {len(COPIES)} copies ({', '.join(COPIES)})")
    print(
        f"{'model':24s} {'i2t R@1':>8s} {'t2i R@1':>8s} {'dup min':>8s} {'dup med':>8s} {'unrel med':>9s} "
        f"{'unrel max':>9s} {'margin':>8s}"
    )
    for label, r in results.items():
        print(
            f"{label:24s} {r['i2t']:8.3f} {r['t2i']:8.3f} {r['duplicate_min']:8.4f} {r['duplicate_median']:8.4f} "
            f"{r['unrelated_median']:9.4f} {r['unrelated_max']:9.4f} {r['margin']:8.4f}"
        )
    toy, rnd = results["toy-world CLIP"], results["random CLIP (baseline)"]
    print(
        f"ratio toy/random: i2t R@1 {toy['i2t'] / max(rnd['i2t'], 1e-9):.1f}x, t2i R@1 "
        f"{toy['t2i'] / max(rnd['t2i'], 1e-9):.1f}x; margin {toy['margin']:+.4f} vs {rnd['margin']:+.4f}"
    )


if __name__ == "__main__":
    with recorded("toy_clip"):
        main()
