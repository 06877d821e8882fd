"""Triton Python-backend models for the CLIP towers; `triton_models/*/1/model.py` re-export these.

The model to serve comes from env `CLIPSTREAM_CLIP_MODEL` (set per deployment) or the `clip_model`
parameter in config.pbtxt, so one repository serves the test model or any real open_clip/HF CLIP.
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from typing import Any

import numpy as np
import torch

from services.clip.loader import LoadedClip, load_clip, load_tokenizer
from services.clip.preprocess import crop_uint8
from services.common.settings import CommonSettings


def _load(args: dict[str, Any]) -> LoadedClip:
    config = json.loads(args["model_config"])
    param = config.get("parameters", {}).get("clip_model", {}).get("string_value", "")
    spec = os.environ.get("CLIPSTREAM_CLIP_MODEL") or param
    if not spec:
        raise RuntimeError("no CLIP model configured: set CLIPSTREAM_CLIP_MODEL or the clip_model parameter")
    return load_clip(spec, device=CommonSettings().clip_device)


def _model_ids(clip: LoadedClip, n: int) -> np.ndarray:
    ident = f"{clip.ref.name}:{clip.ref.version}:{clip.ref.dim}".encode()
    return np.array([[ident]] * n, dtype=object)


class ImageModel:
    """uint8 (N, H, W, 3) -> L2-normalised (N, dim). Requests with equal H, W run as one forward pass."""

    def initialize(self, args: dict[str, Any]) -> None:
        self.clip = _load(args)

    def execute(self, requests: list[Any]) -> list[Any]:
        import triton_python_backend_utils as pb_utils

        arrays = [pb_utils.get_input_tensor_by_name(r, "pixels").as_numpy() for r in requests]
        by_shape: dict[tuple[int, ...], list[int]] = defaultdict(list)
        for i, a in enumerate(arrays):
            by_shape[a.shape[1:]].append(i)
        outputs: list[np.ndarray | None] = [None] * len(requests)
        for indices in by_shape.values():
            stacked = np.concatenate([arrays[i] for i in indices])
            embedded = self.clip.embed_pixels(stacked)
            start = 0
            for i in indices:
                n = arrays[i].shape[0]
                outputs[i] = embedded[start : start + n]
                start += n
        return [
            pb_utils.InferenceResponse(
                output_tensors=[
                    pb_utils.Tensor("embedding", out.astype(np.float32)),
                    pb_utils.Tensor("model_id", _model_ids(self.clip, out.shape[0])),
                ]
            )
            for out in outputs
            if out is not None
        ]


class TextModel:
    """UTF-8 strings (N, 1) -> L2-normalised (N, dim); tokenised inside with the model's own tokenizer."""

    def initialize(self, args: dict[str, Any]) -> None:
        self.clip = _load(args)

    def execute(self, requests: list[Any]) -> list[Any]:
        import triton_python_backend_utils as pb_utils

        texts = [pb_utils.get_input_tensor_by_name(r, "text").as_numpy().reshape(-1) for r in requests]
        flat = [t.decode("utf-8", errors="replace") if isinstance(t, bytes) else str(t) for a in texts for t in a]
        embedded = self.clip.embed_texts(flat)
        responses, start = [], 0
        for a in texts:
            out = embedded[start : start + len(a)]
            start += len(a)
            responses.append(
                pb_utils.InferenceResponse(
                    output_tensors=[
                        pb_utils.Tensor("embedding", out.astype(np.float32)),
                        pb_utils.Tensor("model_id", _model_ids(self.clip, len(a))),
                    ]
                )
            )
        return responses


def _params(args: dict[str, Any]) -> dict[str, str]:
    config = json.loads(args["model_config"])
    return {k: v.get("string_value", "") for k, v in config.get("parameters", {}).items()}


def _ids(model_id: str, n: int) -> np.ndarray:
    return np.array([[model_id.encode()]] * n, dtype=object)


class ImagePrep:
    """GPU ensemble step: uint8 (N, H, W, 3) -> uint8 (N, S, S, 3) resized and centre-cropped."""

    def initialize(self, args: dict[str, Any]) -> None:
        params = _params(args)
        self.size = int(params["image_size"])
        self.model_id = params["model_id"]

    def execute(self, requests: list[Any]) -> list[Any]:
        import triton_python_backend_utils as pb_utils

        responses = []
        for request in requests:
            pixels = pb_utils.get_input_tensor_by_name(request, "pixels").as_numpy()
            crop = crop_uint8(torch.from_numpy(pixels), self.size).numpy()
            responses.append(
                pb_utils.InferenceResponse(
                    output_tensors=[
                        pb_utils.Tensor("crop", crop),
                        pb_utils.Tensor("model_id", _ids(self.model_id, crop.shape[0])),
                    ]
                )
            )
        return responses


class TextTokenize:
    """GPU ensemble step: UTF-8 strings (N, 1) -> int64 tokens (N, context)."""

    def initialize(self, args: dict[str, Any]) -> None:
        params = _params(args)
        self.tokenize = load_tokenizer(os.environ.get("CLIPSTREAM_CLIP_MODEL") or params["clip_model"])
        self.model_id = params["model_id"]

    def execute(self, requests: list[Any]) -> list[Any]:
        import triton_python_backend_utils as pb_utils

        responses = []
        for request in requests:
            raw = pb_utils.get_input_tensor_by_name(request, "text").as_numpy().reshape(-1)
            texts = [t.decode("utf-8", errors="replace") if isinstance(t, bytes) else str(t) for t in raw]
            tokens = self.tokenize(texts).numpy().astype(np.int64)
            responses.append(
                pb_utils.InferenceResponse(
                    output_tensors=[
                        pb_utils.Tensor("tokens", tokens),
                        pb_utils.Tensor("model_id", _ids(self.model_id, len(texts))),
                    ]
                )
            )
        return responses
