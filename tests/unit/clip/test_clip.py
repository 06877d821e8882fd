import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from services.clip.card import ModelCard
from services.clip.loader import load_clip
from services.clip.preprocess import preprocess_pixels
from services.clip.random_model import write_random_clip


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_random_clip(tmp_path_factory.mktemp("clip") / "m", seed=7)


def test_random_model_loads_through_the_real_loader(model_dir: Path) -> None:
    clip = load_clip(str(model_dir))
    assert ModelCard.read(model_dir).random_weights
    assert clip.ref.dim == 128
    pixels = np.random.default_rng(0).integers(0, 256, (3, 100, 150, 3), dtype=np.uint8)
    emb = clip.embed_pixels(pixels)
    assert emb.shape == (3, 128)
    assert np.allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    text = clip.embed_texts(["a dog", "aerial sunset"])
    assert text.shape == (2, 128)
    assert not np.allclose(text[0], text[1])


def test_same_seed_same_weights_same_version(tmp_path: Path, model_dir: Path) -> None:
    again = write_random_clip(tmp_path / "again", seed=7)
    other = write_random_clip(tmp_path / "other", seed=8)
    assert load_clip(str(again)).ref.version == load_clip(str(model_dir)).ref.version
    assert load_clip(str(other)).ref.version != load_clip(str(model_dir)).ref.version


def test_unknown_spec_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no CLIP checkpoint"):
        load_clip(str(tmp_path / "missing"))


def test_preprocess_resizes_shortest_side_and_centre_crops() -> None:
    pixels = torch.zeros((1, 100, 300, 3), dtype=torch.uint8)
    pixels[:, :, 100:200] = 255  # the centre third is white
    out = preprocess_pixels(pixels, 50, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0))
    assert out.shape == (1, 3, 50, 50)
    assert out.min().item() > 0.9  # the crop kept only the white centre (edges blur slightly)
    assert out.mean().item() > 0.98


def test_preprocess_rejects_wrong_layout() -> None:
    with pytest.raises(ValueError):
        preprocess_pixels(torch.zeros((3, 10, 10), dtype=torch.uint8), 8, (0, 0, 0), (1, 1, 1))


def test_open_clip_and_hugging_face_folders_give_identical_embeddings(tmp_path: Path) -> None:
    oc = load_clip(str(write_random_clip(tmp_path / "oc", seed=3)))
    hf = load_clip(str(write_random_clip(tmp_path / "hf", seed=3, fmt="hf")))
    assert (tmp_path / "hf" / "config.json").is_file() and (tmp_path / "hf" / "vocab.json").is_file()
    pixels = np.random.default_rng(1).integers(0, 256, (3, 120, 200, 3), dtype=np.uint8)
    np.testing.assert_allclose(oc.embed_pixels(pixels), hf.embed_pixels(pixels), atol=1e-5)
    texts = ["a dog lying on the floor", "Aerial SUNSET over the sea!", "x"]
    oc_tokens, hf_tokens = oc.tokenize(texts), hf.tokenize(texts)
    real = oc_tokens != 0  # open_clip pads with 0, HF with EOT; both pool at the first EOT
    assert torch.equal(oc_tokens[real], hf_tokens[real])
    np.testing.assert_allclose(oc.embed_texts(texts), hf.embed_texts(texts), atol=1e-5)
    other = load_clip(str(write_random_clip(tmp_path / "hf2", seed=4, fmt="hf")))
    assert not np.allclose(other.embed_texts(texts), hf.embed_texts(texts), atol=1e-3)


def test_extreme_aspect_ratio_costs_no_more_memory_than_the_crop() -> None:
    """A 1x40000 picture is cropped to its 1x1 centre before resizing; resizing first would allocate
    224 x 8.96M floats (24 GB). Measured in a child so the parent's peak memory does not count."""
    code = (
        "import resource, torch\n"
        "from services.clip.preprocess import preprocess_pixels\n"
        "base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "out = preprocess_pixels(torch.full((1, 1, 40000, 3), 200, dtype=torch.uint8), 224, (0, 0, 0), (1, 1, 1))\n"
        "assert tuple(out.shape) == (1, 3, 224, 224), out.shape\n"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    grown_kib = int(done.stdout.strip())
    assert grown_kib < 200 * 1024, f"preprocessing grew the process by {grown_kib} KiB"
