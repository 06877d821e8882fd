"""Load a real pretrained CLIP from a path or by name, in either checkpoint format users have.

Spec forms:
- a folder with `open_clip_config.json` + weights (open_clip's hub layout, e.g. a downloaded laion model);
- a folder with a Hugging Face `CLIPModel` (`config.json` + `model.safetensors` + tokenizer files);
- `ARCH@PRETRAINED`, an open_clip architecture with a checkpoint file path or a pretrained tag
  (a tag downloads from the hub, which production may reach and this sandbox cannot).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from services.clip.card import ModelCard
from services.clip.preprocess import preprocess_pixels
from services.clip.version import weights_version
from services.common.messages import ModelRef

OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)


@dataclass
class LoadedClip:
    ref: ModelRef
    image_size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    context_length: int
    module: torch.nn.Module  # owns the weights the callables below use
    encode_image: Callable[[torch.Tensor], torch.Tensor]  # normalised (N, 3, S, S) -> features
    tokenize: Callable[[Sequence[str]], torch.Tensor]  # -> int64 (N, context_length)
    encode_tokens: Callable[[torch.Tensor], torch.Tensor]  # tokens -> features

    @property
    def device(self) -> torch.device:
        return next(self.module.parameters()).device

    def encode_text(self, texts: Sequence[str]) -> torch.Tensor:
        return self.encode_tokens(self.tokenize(texts).to(self.device))

    @torch.inference_mode()
    def embed_pixels(self, pixels: np.ndarray | torch.Tensor) -> np.ndarray:
        """uint8 (N, H, W, 3) -> L2-normalised float32 (N, dim)."""
        tensor = torch.as_tensor(pixels).to(self.device)
        features = self.encode_image(preprocess_pixels(tensor, self.image_size, self.mean, self.std))
        return torch.nn.functional.normalize(features.float(), dim=-1).cpu().numpy()

    @torch.inference_mode()
    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        features = self.encode_text(list(texts))
        return torch.nn.functional.normalize(features.float(), dim=-1).cpu().numpy()


def load_clip(spec: str, device: str = "auto") -> LoadedClip:
    """`device` auto: the GPU when torch sees one (Triton's Python backend on a GPU node), else the CPU."""
    path = Path(spec)
    if path.is_dir() and (path / "open_clip_config.json").is_file():
        clip = _load_open_clip(
            f"local-dir:{path.resolve()}", None, name=_model_name(path), version=weights_version(path)
        )
    elif path.is_dir() and (path / "config.json").is_file():
        clip = _load_hf(path)
    elif "@" in spec:
        arch, pretrained = spec.split("@", 1)
        version = weights_version(Path(pretrained)) if Path(pretrained).is_file() else pretrained
        clip = _load_open_clip(arch, pretrained, name=arch, version=version)
    else:
        raise FileNotFoundError(
            f"no CLIP checkpoint at {spec!r}: expected an open_clip or Hugging Face folder, or ARCH@PRETRAINED"
        )
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    clip.module.to(device)
    return clip


def load_tokenizer(spec: str) -> Callable[[Sequence[str]], torch.Tensor]:
    """Just the tokenizer of `spec` (no weights): for the GPU ensemble's tokenising step."""
    import open_clip

    path = Path(spec)
    if path.is_dir() and (path / "open_clip_config.json").is_file():
        oc = open_clip.get_tokenizer(f"local-dir:{path.resolve()}")
    elif path.is_dir() and (path / "config.json").is_file():
        from transformers import CLIPTokenizerFast  # type: ignore[attr-defined]

        hf = CLIPTokenizerFast.from_pretrained(path)
        context = int(json.loads((path / "config.json").read_text())["text_config"]["max_position_embeddings"])
        return lambda texts: hf(
            list(texts), padding="max_length", truncation=True, max_length=context, return_tensors="pt"
        )["input_ids"].long()
    else:
        oc = open_clip.get_tokenizer(spec.split("@", 1)[0])
    return lambda texts: oc(list(texts)).long()


def _model_name(path: Path) -> str:
    return ModelCard.read(path).name or path.name


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
        context_length=int(getattr(tokenizer, "context_length", 77)),
        module=model,
        encode_image=model.encode_image,
        tokenize=lambda texts: tokenizer(list(texts)).long(),
        encode_tokens=model.encode_text,
    )


def _load_hf(path: Path) -> LoadedClip:
    from transformers import CLIPModel, CLIPTokenizerFast  # type: ignore[attr-defined]

    model = CLIPModel.from_pretrained(path).eval()
    tokenizer = CLIPTokenizerFast.from_pretrained(path)
    cfg = model.config

    context = int(cfg.text_config.max_position_embeddings)

    def tokenize(texts: Sequence[str]) -> torch.Tensor:
        # padded to the full context like open_clip; EOT pooling and the causal mask make padding inert
        batch = tokenizer(list(texts), padding="max_length", truncation=True, max_length=context, return_tensors="pt")
        return batch["input_ids"].long()

    return LoadedClip(
        ref=ModelRef(name=_slug(_model_name(path)), version=weights_version(path), dim=int(cfg.projection_dim)),
        image_size=int(cfg.vision_config.image_size),
        mean=OPENAI_MEAN,
        std=OPENAI_STD,
        context_length=context,
        module=model,
        encode_image=lambda x: _features(model.get_image_features(pixel_values=x)),
        tokenize=tokenize,
        encode_tokens=lambda tokens: _features(model.get_text_features(input_ids=tokens)),
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
