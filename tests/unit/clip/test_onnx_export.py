"""The GPU deployment path: ONNX towers match torch, and the generated Triton repository is valid."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2

from services.clip.loader import load_clip
from services.clip.onnx_export import write_repository
from services.clip.random_model import write_random_clip


@pytest.fixture(scope="module", params=["open_clip", "hf"])
def exported(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, dict[str, Path]]:
    folder = tmp_path_factory.mktemp("onnx")
    spec = str(write_random_clip(folder / "model", seed=5, fmt=request.param))
    return spec, write_repository(spec, folder / "repo", max_batch=32)


def _run(path: Path, name: str, value: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return np.asarray(session.run(None, {name: value})[0])


def test_onnx_towers_match_torch(exported: tuple[str, dict[str, Path]]) -> None:
    spec, paths = exported
    clip = load_clip(spec)
    pixels = np.random.default_rng(2).integers(0, 256, (5, 224, 224, 3), dtype=np.uint8)
    np.testing.assert_allclose(_run(paths["image_onnx"], "pixels", pixels), clip.embed_pixels(pixels), atol=1e-4)
    texts = ["a dog", "an aerial view of a sunset over the sea", "three people on bikes"]
    tokens = clip.tokenize(texts).numpy()
    np.testing.assert_allclose(_run(paths["text_onnx"], "tokens", tokens), clip.embed_texts(texts), atol=1e-4)


def test_repository_configs_are_valid_model_configs(exported: tuple[str, dict[str, Path]]) -> None:
    _, paths = exported
    configs = {
        p.parent.name: text_format.Parse(p.read_text(), model_config_pb2.ModelConfig())
        for p in paths["image_onnx"].parents[2].glob("*/config.pbtxt")
    }
    assert set(configs) == {
        "clip_image",
        "clip_text",
        "clip_image_prep",
        "clip_text_tokenize",
        "clip_image_onnx",
        "clip_text_onnx",
    }
    onnx_image = configs["clip_image_onnx"]
    assert onnx_image.platform == "onnxruntime_onnx" and onnx_image.max_batch_size == 32
    assert list(onnx_image.dynamic_batching.preferred_batch_size) == [8, 16, 32]
    accel = onnx_image.optimization.execution_accelerators.gpu_execution_accelerator
    assert [a.name for a in accel] == ["tensorrt"]
    steps = configs["clip_image"].ensemble_scheduling.step
    assert [s.model_name for s in steps] == ["clip_image_prep", "clip_image_onnx"]
