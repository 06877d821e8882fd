"""Export both CLIP towers to ONNX and write a Triton model repository for NVIDIA's container.

The GPU repository keeps the contract of `triton_models/` (`clip_image`: uint8 HxWx3 in; `clip_text`:
strings in; both give `embedding` + `model_id`) as two ensembles, the pattern of Triton's
Conceptual_Guide: a light Python step (resize/crop on uint8 pixels; BPE tokenisation) feeds an ONNX
tower run by the `onnxruntime` backend, with TensorRT as its execution accelerator. Normalisation
lives inside the ONNX graph, so only uint8 pixels cross the ensemble.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch

from services.clip.loader import LoadedClip, load_clip

OPSET = 17


class ImageTower(torch.nn.Module):
    """uint8 (N, S, S, 3) already resized and cropped -> L2-normalised (N, dim)."""

    def __init__(self, clip: LoadedClip) -> None:
        super().__init__()
        self.clip = clip
        self.model = clip.module.requires_grad_(False)  # registered, so weights export as initializers
        self.mean: torch.Tensor
        self.std: torch.Tensor
        self.register_buffer("mean", torch.tensor(clip.mean).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(clip.std).view(1, 3, 1, 1))

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        x = pixels.permute(0, 3, 1, 2).float() / 255.0
        x = (x - self.mean) / self.std
        return torch.nn.functional.normalize(self.clip.encode_image(x).float(), dim=-1)


class TextTower(torch.nn.Module):
    """int64 tokens (N, context) -> L2-normalised (N, dim)."""

    def __init__(self, clip: LoadedClip) -> None:
        super().__init__()
        self.clip = clip
        self.model = clip.module.requires_grad_(False)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.normalize(self.clip.encode_tokens(tokens).float(), dim=-1)


def export_towers(clip: LoadedClip, image_path: Path, text_path: Path) -> None:
    size = clip.image_size
    image_path.parent.mkdir(parents=True, exist_ok=True)
    text_path.parent.mkdir(parents=True, exist_ok=True)
    fastpath = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)  # the fused attention kernel has no ONNX export
    try:
        _export(clip, size, image_path, text_path)
    finally:
        torch.backends.mha.set_fastpath_enabled(fastpath)


def _export(clip: LoadedClip, size: int, image_path: Path, text_path: Path) -> None:
    with torch.inference_mode(False), torch.no_grad():
        torch.onnx.export(
            ImageTower(clip).eval(),
            (torch.zeros(2, size, size, 3, dtype=torch.uint8),),
            str(image_path),
            input_names=["pixels"],
            output_names=["embedding"],
            opset_version=OPSET,
            dynamic_axes={"pixels": {0: "batch"}, "embedding": {0: "batch"}},
            dynamo=False,
        )
        tokens = clip.tokenize(["a photo", "an aerial view of a sunset"])
        torch.onnx.export(
            TextTower(clip).eval(),
            (tokens,),
            str(text_path),
            input_names=["tokens"],
            output_names=["embedding"],
            opset_version=OPSET,
            dynamic_axes={"tokens": {0: "batch"}, "embedding": {0: "batch"}},
            dynamo=False,
        )


def _onnx_config(name: str, inp: str, dtype: str, dims: str, dim: int, max_batch: int, gpu: bool) -> str:
    kind = "KIND_GPU" if gpu else "KIND_CPU"
    trt = (
        """optimization { execution_accelerators { gpu_execution_accelerator: [
  { name: "tensorrt" parameters { key: "precision_mode" value: "FP16" } }
] } }
"""
        if gpu
        else ""
    )
    return f"""name: "{name}"
platform: "onnxruntime_onnx"
max_batch_size: {max_batch}
input [ {{ name: "{inp}" data_type: {dtype} dims: {dims} }} ]
output [ {{ name: "embedding" data_type: TYPE_FP32 dims: [ {dim} ] }} ]
dynamic_batching {{
  preferred_batch_size: [ {max_batch // 4}, {max_batch // 2}, {max_batch} ]
  max_queue_delay_microseconds: 2000
}}
instance_group [ {{ count: 1 kind: {kind} }} ]
{trt}"""


def _step_config(
    name: str,
    model_class: str,
    inp: str,
    dtype: str,
    dims: str,
    out: str,
    out_type: str,
    out_dims: str,
    max_batch: int,
    model_id: str,
    extra: dict[str, str],
) -> str:
    params = {"model_id": model_id, **extra}
    rendered = "\n".join(f'parameters {{ key: "{k}" value {{ string_value: "{v}" }} }}' for k, v in params.items())
    return f"""name: "{name}"
backend: "python"
max_batch_size: {max_batch}
input [ {{ name: "{inp}" data_type: {dtype} dims: {dims} }} ]
output [
  {{ name: "{out}" data_type: {out_type} dims: {out_dims} }},
  {{ name: "model_id" data_type: TYPE_STRING dims: [ 1 ] }}
]
dynamic_batching {{ max_queue_delay_microseconds: 1000 }}
instance_group [ {{ count: 2 kind: KIND_CPU }} ]
{rendered}
# class: {model_class}
"""


def _ensemble(
    name: str, inp: str, dtype: str, dims: str, step: str, step_out: str, tower: str, tower_in: str, max_batch: int
) -> str:
    return f"""name: "{name}"
platform: "ensemble"
max_batch_size: {max_batch}
input [ {{ name: "{inp}" data_type: {dtype} dims: {dims} }} ]
output [
  {{ name: "embedding" data_type: TYPE_FP32 dims: [ -1 ] }},
  {{ name: "model_id" data_type: TYPE_STRING dims: [ 1 ] }}
]
ensemble_scheduling {{ step [
  {{ model_name: "{step}" model_version: -1
    input_map {{ key: "{inp}" value: "{inp}" }}
    output_map {{ key: "{step_out}" value: "{step_out}" }}
    output_map {{ key: "model_id" value: "model_id" }} }},
  {{ model_name: "{tower}" model_version: -1
    input_map {{ key: "{tower_in}" value: "{step_out}" }}
    output_map {{ key: "embedding" value: "embedding" }} }}
] }}
"""


_STEP_MODEL = '''"""Generated by `clipstream model export-onnx`: {doc}"""

from services.clip.serving import {cls} as TritonPythonModel

__all__ = ["TritonPythonModel"]
'''


def write_repository(spec: str, out: Path, max_batch: int = 64, gpu: bool = True) -> dict[str, Path]:
    """Export `spec` (any form `load_clip` takes) into a complete Triton model repository at `out`."""
    clip = load_clip(spec, device="cpu")  # exported from CPU tensors
    ref = clip.ref
    model_id = f"{ref.name}:{ref.version}:{ref.dim}"
    size = clip.image_size
    if out.exists():
        shutil.rmtree(out)
    paths = {
        "image_onnx": out / "clip_image_onnx" / "1" / "model.onnx",
        "text_onnx": out / "clip_text_onnx" / "1" / "model.onnx",
    }
    export_towers(clip, paths["image_onnx"], paths["text_onnx"])
    files = {
        "clip_image_onnx/config.pbtxt": _onnx_config(
            "clip_image_onnx", "pixels", "TYPE_UINT8", f"[ {size}, {size}, 3 ]", ref.dim, max_batch, gpu
        ),
        "clip_text_onnx/config.pbtxt": _onnx_config(
            "clip_text_onnx", "tokens", "TYPE_INT64", f"[ {clip.context_length} ]", ref.dim, max_batch, gpu
        ),
        "clip_image_prep/config.pbtxt": _step_config(
            "clip_image_prep",
            "ImagePrep",
            "pixels",
            "TYPE_UINT8",
            "[ -1, -1, 3 ]",
            "crop",
            "TYPE_UINT8",
            f"[ {size}, {size}, 3 ]",
            max_batch,
            model_id,
            {"image_size": str(size)},
        ),
        "clip_text_tokenize/config.pbtxt": _step_config(
            "clip_text_tokenize",
            "TextTokenize",
            "text",
            "TYPE_STRING",
            "[ 1 ]",
            "tokens",
            "TYPE_INT64",
            f"[ {clip.context_length} ]",
            max_batch,
            model_id,
            {"clip_model": spec},
        ),
        "clip_image/config.pbtxt": _ensemble(
            "clip_image",
            "pixels",
            "TYPE_UINT8",
            "[ -1, -1, 3 ]",
            "clip_image_prep",
            "crop",
            "clip_image_onnx",
            "pixels",
            max_batch,
        ),
        "clip_text/config.pbtxt": _ensemble(
            "clip_text",
            "text",
            "TYPE_STRING",
            "[ 1 ]",
            "clip_text_tokenize",
            "tokens",
            "clip_text_onnx",
            "tokens",
            max_batch,
        ),
        "clip_image_prep/1/model.py": _STEP_MODEL.format(doc="resize + centre crop on uint8.", cls="ImagePrep"),
        "clip_text_tokenize/1/model.py": _STEP_MODEL.format(doc="BPE tokenisation.", cls="TextTokenize"),
    }
    (out / "clip_image" / "1").mkdir(parents=True, exist_ok=True)  # ensembles still need a version folder
    (out / "clip_text" / "1").mkdir(parents=True, exist_ok=True)
    for rel, text in files.items():
        path = out / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        paths[rel] = path
    (out / "clipstream-export.json").write_text(json.dumps({"model_id": model_id, "source": spec}, indent=2))
    return paths
