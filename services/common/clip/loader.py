"""Load a real pretrained CLIP from a path or by name, in either checkpoint format users have.

Spec forms:
- a folder with `open_clip_config.json` + weights (open_clip's hub layout, e.g. a downloaded laion model);
- a folder with a Hugging Face `CLIPModel` (`config.json` + `model.safetensors` + tokenizer files);
- `ARCH@PRETRAINED`, an open_clip architecture with a checkpoint file path or a pretrained tag
  (a tag downloads from the hub, which production may reach and this sandbox cannot).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from services.common.clip.preprocess import preprocess_pixels
from services.common.messages import ModelRef

OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)


@dataclass
class LoadedClip:
    ref: ModelRef
    image_size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    encode_image: Callable[[torch.Tensor], torch.Tensor]
    encode_text: Callable[[Sequence[str]], torch.Tensor]

    @torch.inference_mode()
    def embed_pixels(self, pixels: np.ndarray | torch.Tensor) -> np.ndarray:
        """uint8 (N, H, W, 3) -> L2-normalised float32 (N, dim)."""
        tensor = torch.as_tensor(pixels)
        features = self.encode_image(preprocess_pixels(tensor, self.image_size, self.mean, self.std))
        return torch.nn.functional.normalize(features.float(), dim=-1).numpy()

    @torch.inference_mode()
    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        features = self.encode_text(list(texts))
        return torch.nn.functional.normalize(features.float(), dim=-1).numpy()


def load_clip(spec: str) -> LoadedClip:
    path = Path(spec)
    if path.is_dir() and (path / "open_clip_config.json").is_file():
        return _load_open_clip(f"local-dir:{path.resolve()}", None, name=_model_name(path), version=_digest(path))
    if path.is_dir() and (path / "config.json").is_file():
        return _load_hf(path)
    if "@" in spec:
        arch, pretrained = spec.split("@", 1)
        version = _digest(Path(pretrained)) if Path(pretrained).is_file() else pretrained
        return _load_open_clip(arch, pretrained, name=arch, version=version)
    raise FileNotFoundError(
        f"no CLIP checkpoint at {spec!r}: expected an open_clip or Hugging Face folder, or ARCH@PRETRAINED"
    )


def _model_name(path: Path) -> str:
    meta = path / "clipstream.json"
    if meta.is_file():
        return str(json.loads(meta.read_text())["name"])
    return path.name


def _digest(path: Path) -> str:
    """Version = hash of the weights, so a changed checkpoint can never share a collection with the old one."""
    files = (
        [path]
        if path.is_file()
        else sorted(p for p in path.iterdir() if p.suffix in {".safetensors", ".bin", ".pt", ".pth"})
    )
    h = hashlib.sha256()
    for f in files:
        with f.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()[:12]


def _load_open_clip(model_name: str, pretrained: str | None, name: str, version: str) -> LoadedClip:
    import open_clip

    model = open_clip.create_model(model_name, pretrained=pretrained, require_pretrained=True)
    model.eval()
    tokenizer = open_clip.get_tokenizer(model_name)
    visual = model.visual
    size = visual.image_size[0] if isinstance(visual.image_size, tuple) else int(visual.image_size)
    mean = tuple(getattr(visual, "image_mean", None) or OPENAI_MEAN)
    std = tuple(getattr(visual, "image_std", None) or OPENAI_STD)
    dim = (
        int(model.text_projection.shape[1])
        if hasattr(model, "text_projection")
        else int(model.encode_text(tokenizer(["a"])).shape[-1])
    )
    return LoadedClip(
        ref=ModelRef(name=_slug(name), version=version, dim=dim),
        image_size=size,
        mean=mean,
        std=std,
        encode_image=model.encode_image,
        encode_text=lambda texts: model.encode_text(tokenizer(texts)),
    )


def _load_hf(path: Path) -> LoadedClip:
    from transformers import CLIPModel, CLIPTokenizerFast  # type: ignore[attr-defined]

    model = CLIPModel.from_pretrained(path).eval()
    tokenizer = CLIPTokenizerFast.from_pretrained(path)
    cfg = model.config

    def encode_text(texts: Sequence[str]) -> torch.Tensor:
        tokens = tokenizer(
            list(texts),
            padding=True,
            truncation=True,
            max_length=cfg.text_config.max_position_embeddings,
            return_tensors="pt",
        )
        return _features(model.get_text_features(**tokens))

    return LoadedClip(
        ref=ModelRef(name=_slug(_model_name(path)), version=_digest(path), dim=int(cfg.projection_dim)),
        image_size=int(cfg.vision_config.image_size),
        mean=OPENAI_MEAN,
        std=OPENAI_STD,
        encode_image=lambda x: _features(model.get_image_features(pixel_values=x)),
        encode_text=encode_text,
    )


def _features(out: object) -> torch.Tensor:
    """transformers 5 returns a model output where 4.x returned the projected tensor."""
    if isinstance(out, torch.Tensor):
        return out
    pooled = getattr(out, "pooler_output", None)
    if isinstance(pooled, torch.Tensor):
        return pooled
    raise TypeError(f"unexpected CLIP output {type(out).__name__}")


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", name).strip("_").lower() or "clip"
