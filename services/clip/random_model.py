"""A small CLIP with seeded random weights, saved exactly as real open_clip checkpoints are.

Tests and the demo load it through the same loader as a downloaded ViT-B/32, so the code path is the
real one; only the weights are meaningless, and the demo says so.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

import torch

from services.clip.card import CARD_FILE

TINY_CONFIG: dict[str, Any] = {
    "embed_dim": 128,
    "vision_cfg": {"image_size": 224, "layers": 2, "width": 128, "head_width": 32, "patch_size": 32},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 128, "heads": 2, "layers": 2},
}


def write_random_clip(
    out_dir: Path,
    seed: int = 0,
    name: str = "clip-tiny-random",
    fmt: Literal["open_clip", "hf"] = "open_clip",
    config: dict[str, Any] | None = None,
) -> Path:
    """Write a CLIP with seeded random weights as an open_clip folder (`open_clip_config.json` +
    `open_clip_model.safetensors`) or a Hugging Face `CLIPModel` folder; the same seed gives the same
    weights in both. `config` is an open_clip model config (default: a tiny one)."""
    import open_clip
    from safetensors.torch import save_file

    from services.clip.convert import save_hf

    cfg = config or TINY_CONFIG
    torch.manual_seed(seed)
    model = open_clip.CLIP(**cfg)
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    mean, std = tuple(open_clip.OPENAI_DATASET_MEAN), tuple(open_clip.OPENAI_DATASET_STD)
    if fmt == "hf":
        save_hf(state, cfg, out_dir, mean, std)
    else:
        out_dir.mkdir(parents=True, exist_ok=True)
        meta = {"model_cfg": cfg, "preprocess_cfg": {"mean": list(mean), "std": list(std)}}
        (out_dir / "open_clip_config.json").write_text(json.dumps(meta, indent=2))
        save_file(state, str(out_dir / "open_clip_model.safetensors"))
    (out_dir / CARD_FILE).write_text(json.dumps({"name": name, "random_weights": True, "seed": seed}))
    return out_dir
