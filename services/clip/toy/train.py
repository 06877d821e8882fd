"""Train the small CLIP on the toy world: a reproducible command (`clipstream model train-toy OUT`).

A tiny ViT and text transformer in open_clip's own layout, tokenised by open_clip's BPE tokenizer and
saved as an open_clip folder, so the product loads it exactly as it loads a downloaded ViT-B/32. Each
step draws a batch of distinct training scenes (no two captions equal, so the contrastive targets are
exact), rendered at a random time, scale and texture; held-out combinations are never drawn.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from services.clip.loader import load_clip
from services.clip.preprocess import preprocess_pixels
from services.clip.thresholds import choose_threshold
from services.clip.toy.prompts import measure, write_card
from services.clip.toy.world import Scene, layout, render, split_scenes

log = logging.getLogger(__name__)

TOY_CONFIG: dict[str, Any] = {
    "embed_dim": 128,
    "vision_cfg": {"image_size": 64, "layers": 3, "width": 128, "head_width": 32, "patch_size": 16},
    "text_cfg": {"context_length": 24, "vocab_size": 49408, "width": 128, "heads": 4, "layers": 2},
}
MEAN = (0.48145466, 0.4578275, 0.40821073)
STD = (0.26862954, 0.26130258, 0.27577711)
TOY_NAME = "clip-toy-world"


@dataclass
class TrainConfig:
    seed: int = 0
    steps: int = 1000
    batch: int = 192
    lr: float = 1e-3
    warmup: int = 60
    weight_decay: float = 0.1
    threads: int = 2
    eval_images_per_scene: int = 2
    model_cfg: dict[str, Any] = field(default_factory=lambda: json.loads(json.dumps(TOY_CONFIG)))


@dataclass
class TrainReport:
    seconds: float
    steps: int
    final_loss: float
    heldout: dict[str, float | int]


def render_batch(scenes: Sequence[Scene], rng: np.random.Generator, image_size: int) -> torch.Tensor:
    """Normalised (N, 3, S, S) through the product's own preprocessing: frames 4:3 like a video's, so
    the centre crop the served model does is part of what it learns from."""
    side = image_size * 3 // 2
    frames = []
    for scene in scenes:
        w = int(rng.integers(side, side * 4 // 3 + 1))
        frame = render(scene, layout(scene, int(rng.integers(1 << 30))), w, side, t=float(rng.uniform(0, 20)))
        frames.append(frame[:, (w - side) // 2 : (w - side) // 2 + side])
    pixels = torch.from_numpy(np.stack(frames))
    x = preprocess_pixels(pixels, image_size, MEAN, STD)
    noise = torch.from_numpy(rng.normal(0, 1, x.shape).astype(np.float32)) * float(rng.uniform(0, 0.08))
    return x + noise


def train(out_dir: Path, config: TrainConfig | None = None, progress: Callable[[str], None] = log.info) -> TrainReport:
    import open_clip
    from safetensors.torch import save_file

    cfg = config or TrainConfig()
    torch.manual_seed(cfg.seed)
    torch.set_num_threads(cfg.threads)
    rng = np.random.default_rng(cfg.seed)
    out_dir.mkdir(parents=True, exist_ok=True)
    meta = {"model_cfg": cfg.model_cfg, "preprocess_cfg": {"mean": list(MEAN), "std": list(STD)}}
    (out_dir / "open_clip_config.json").write_text(json.dumps(meta, indent=2))
    tokenizer = open_clip.get_tokenizer(f"local-dir:{out_dir.resolve()}")

    training, heldout = split_scenes()
    paraphrases = [s.captions() for s in training]
    tokens = {(i, j): tokenizer([c])[0] for i, caps in enumerate(paraphrases) for j, c in enumerate(caps)}
    image_size = int(cfg.model_cfg["vision_cfg"]["image_size"])

    model = open_clip.CLIP(**cfg.model_cfg)
    model.train()
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2 and "embedding" not in n]
    rest = [p for n, p in model.named_parameters() if not (p.ndim >= 2 and "embedding" not in n)]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": rest, "weight_decay": 0.0}], lr=cfg.lr
    )

    def lr_at(step: int) -> float:
        if step < cfg.warmup:
            return cfg.lr * (step + 1) / cfg.warmup
        return cfg.lr * 0.5 * (1 + math.cos(math.pi * (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)))

    started = time.perf_counter()
    loss_value = float("nan")
    for step in range(cfg.steps):
        picks = rng.choice(len(training), size=min(cfg.batch, len(training)), replace=False)
        images = render_batch([training[i] for i in picks], rng, image_size)
        texts = torch.stack([tokens[(int(i), int(rng.integers(len(paraphrases[i]))))] for i in picks])
        for group in opt.param_groups:
            group["lr"] = lr_at(step)
        img = F.normalize(model.encode_image(images), dim=-1)
        txt = F.normalize(model.encode_text(texts), dim=-1)
        logits = model.logit_scale.exp() * img @ txt.T
        labels = torch.arange(len(picks))
        loss = (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)) / 2
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0, math.log(100))
        loss_value = float(loss.detach())
        if step % 50 == 0 or step == cfg.steps - 1:
            progress(f"step {step}/{cfg.steps} loss {loss_value:.3f} ({time.perf_counter() - started:.0f}s)")
    seconds = time.perf_counter() - started

    model.eval()
    scores = heldout_scores(model, tokenizer, heldout, image_size, cfg.eval_images_per_scene, seed=cfg.seed + 1)
    state = {k: v.detach().to(torch.float16).contiguous() for k, v in model.state_dict().items()}
    weights = out_dir / "open_clip_model.safetensors"
    save_file(state, str(weights))
    weights.chmod(0o644)  # safetensors writes 0600; the image runs services as another user
    report = TrainReport(seconds=round(seconds, 1), steps=cfg.steps, final_loss=round(loss_value, 4), heldout=scores)
    info = {
        "name": TOY_NAME,
        "random_weights": False,
        "toy_world": True,
        "knows": "shapes (circle, square, triangle, cross) x colours (red, green, blue, yellow, white, purple) x "
        "counts (one to three) x sizes (small, large) x backgrounds (sky, grass, water, night, sand)",
        "train": {k: v for k, v in asdict(cfg).items() if k != "model_cfg"},
        "report": asdict(report),
        "thresholds": {"text_match": scores["text_match_threshold"]},
    }
    (out_dir / "clipstream.json").write_text(json.dumps(info, indent=2))
    # the cache's threshold, on the saved (float16) weights as the product loads them
    write_card(out_dir, measure(load_clip(str(out_dir), device="cpu").embed_texts))
    return report


@torch.inference_mode()
def heldout_scores(
    model: torch.nn.Module, tokenizer: Any, scenes: Sequence[Scene], image_size: int, per_scene: int, seed: int
) -> dict[str, float | int]:
    """Recall@1 both ways among the held-out captions, and the model's own "no good match" threshold: the
    cut that best separates a picture's true caption from the best-scoring wrong one."""
    rng = np.random.default_rng(seed)
    txt = F.normalize(model.encode_text(tokenizer([s.caption for s in scenes])), dim=-1)  # type: ignore[operator]
    recalls_i2t, recalls_t2i, positives, negatives = [], [], [], []
    for _ in range(per_scene):
        img = F.normalize(model.encode_image(render_batch(scenes, rng, image_size)), dim=-1)  # type: ignore[operator]
        sims = img @ txt.T  # (images, captions), image i shows caption i
        n = len(scenes)
        recalls_i2t.append(float((sims.argmax(1) == torch.arange(n)).float().mean()))
        recalls_t2i.append(float((sims.argmax(0) == torch.arange(n)).float().mean()))
        diag = sims.diag()
        positives.append(diag)
        negatives.append(sims.masked_fill(torch.eye(n, dtype=torch.bool), -1).max(1).values)
    pos, neg = torch.cat(positives), torch.cat(negatives)
    return {
        "image_to_text_recall_at_1": round(float(np.mean(recalls_i2t)), 4),
        "text_to_image_recall_at_1": round(float(np.mean(recalls_t2i)), 4),
        "captions": float(len(scenes)),
        "true_caption_score_p10": round(float(pos.quantile(0.1)), 4),
        "best_wrong_caption_score_p90": round(float(neg.quantile(0.9)), 4),
        **{f"text_match_{k}": v for k, v in choose_threshold(pos.numpy(), neg.numpy()).as_dict().items()},
    }
