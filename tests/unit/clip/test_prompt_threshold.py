"""The shipped toy CLIP's cache threshold (`prompt_match`) against every toy-world caption: a cache hit
serves a video already generated, so no two captions of different scenes may reach it."""

from collections.abc import Iterator

import numpy as np
import pytest

from services.clip.card import ModelCard
from services.clip.loader import load_clip
from services.clip.toy.prompts import measure_vectors
from services.clip.toy.world import all_scenes
from services.common.settings import CommonSettings

SPEC = str(CommonSettings().default_model_dir)


@pytest.fixture(scope="module")
def embedded() -> Iterator[tuple[list[str], np.ndarray, np.ndarray]]:
    """All 720 scenes in every phrasing, the scene of each caption, and their vectors from the shipped model."""
    scenes = all_scenes()
    texts = [c for s in scenes for c in s.captions()]
    owner = np.array([k for k, s in enumerate(scenes) for _ in s.captions()])
    yield texts, owner, load_clip(SPEC, device="cpu").embed_texts(texts)


def test_no_two_captions_of_different_scenes_reach_the_shipped_prompt_match(
    embedded: tuple[list[str], np.ndarray, np.ndarray],
) -> None:
    texts, owner, vectors = embedded
    threshold = ModelCard.read(SPEC).thresholds["prompt_match"]
    scores = vectors @ vectors.T
    different = owner[:, None] != owner[None, :]
    colliding = np.argwhere(different & (scores >= threshold))
    pairs = [(texts[a], texts[b], float(scores[a, b])) for a, b in colliding[:5]]
    assert colliding.size == 0, f"{len(colliding) // 2} pairs at or above {threshold}, e.g. {pairs}"
    # the card says what it was measured on, and that measurement is this one
    stated = ModelCard.read(SPEC).report["prompt_match"]
    assert stated["captions"] == len(texts) == 2880
    assert stated["nearest_other"] == pytest.approx(float(scores[different].max()), abs=1e-5)
    assert stated["margin"] > 0


def test_the_shipped_threshold_is_what_the_measuring_command_derives(
    embedded: tuple[list[str], np.ndarray, np.ndarray],
) -> None:
    texts, owner, vectors = embedded
    result = measure_vectors(texts, owner, vectors)
    card = ModelCard.read(SPEC)
    assert card.thresholds["prompt_match"] == result.threshold
    assert result.different_pairs == 2880 * 2879 // 2 - 720 * 6  # every pair but a scene's own phrasings
    assert result.threshold > result.nearest_other
    # the paraphrases the cache exists for: most hit at this threshold (the rest overlap other scenes)
    assert result.paraphrase_recall == pytest.approx(card.report["prompt_match"]["paraphrase_recall"], abs=1e-4)
