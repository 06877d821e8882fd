"""A face-embedding model given by path: a small ONNX network we export ourselves, loaded through the same code a
user's ArcFace export goes through."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data

from services.media.faces import FaceModel, crop, detect


class TinyFaceNet(torch.nn.Module):
    """NCHW 112x112 in, 32-d out: the shape of an ArcFace export, at a size a test can build."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(3)
        self.features = torch.nn.Sequential(
            torch.nn.Conv2d(3, 8, 5, stride=4), torch.nn.ReLU(), torch.nn.Conv2d(8, 16, 3, stride=2), torch.nn.ReLU()
        )
        self.head = torch.nn.Linear(16 * 13 * 13, 32)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).flatten(1))


@pytest.fixture(scope="module")
def model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("face") / "tiny-face.onnx"
    torch.onnx.export(
        TinyFaceNet().eval(),
        (torch.zeros(1, 3, 112, 112),),
        str(path),
        input_names=["input"],
        output_names=["embedding"],
        dynamic_axes={"input": {0: "n"}, "embedding": {0: "n"}},
        opset_version=17,
        dynamo=False,
    )
    return path


def test_the_model_is_read_from_its_file(model_path: Path) -> None:
    model = FaceModel(model_path)
    assert model.side == 112 and model.ref.dim == 32 and model.ref.name == "face-tiny-face"
    assert FaceModel(model_path).ref == model.ref  # the version is the file's hash: stable


def test_crops_embed_to_unit_vectors_like_the_network_does(model_path: Path) -> None:
    model = FaceModel(model_path)
    picture = data.astronaut()
    face = crop(picture, detect(picture)[0])
    vectors = model.embed([face, face[:, ::-1].copy(), np.full_like(face, 128)])
    assert vectors.shape == (3, 32) and np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    sized = np.asarray(Image.fromarray(face).resize((112, 112), Image.Resampling.BICUBIC), dtype=np.float32)
    resized = torch.from_numpy(((sized - 127.5) / 128.0).transpose(2, 0, 1)[None].copy())
    expected = TinyFaceNet().eval()(resized).detach().numpy()[0]
    assert vectors[0] == pytest.approx(expected / np.linalg.norm(expected), abs=1e-4)
    assert float(vectors[0] @ vectors[2]) < 0.99
    assert model.embed([]).shape == (0, 32)
