"""The toy world and the shipped toy CLIP: captions are the truth, and the model has learnt them."""

import cv2
import numpy as np
import pytest

from services.clip.card import ModelCard
from services.clip.loader import load_clip
from services.clip.toy.world import COLOURS, Scene, all_scenes, layout, render, split_scenes
from services.common.settings import CommonSettings


def test_captions_name_every_attribute() -> None:
    scene = Scene("circle", "red", "two", "small", "grass")
    assert scene.caption == "two small red circles on grass"
    assert Scene("cross", "blue", "one", "large", "night").caption == "one large blue cross at night"
    for paraphrase in scene.captions():  # every paraphrase names every attribute
        assert all(word in paraphrase for word in ("two", "small", "red", "circles", "on grass")), paraphrase
    one = Scene("square", "white", "one", "large", "sky").captions()
    assert all("large white square" in c and "in the sky" in c for c in one), one


def test_held_out_combinations_are_never_trained_on() -> None:
    training, heldout = split_scenes()
    assert len(training) + len(heldout) == len(all_scenes()) == 720
    assert not {s.caption for s in training} & {s.caption for s in heldout}
    for attribute in ("shape", "colour", "count", "size", "background"):  # every value is still taught
        assert {getattr(s, attribute) for s in training} == {getattr(s, attribute) for s in all_scenes()}


@pytest.mark.parametrize("count", ["one", "two", "three"])
def test_objects_stay_inside_the_centre_square_and_apart(count: str) -> None:
    scene = Scene("square", "red", count, "large", "night")
    red = np.array(COLOURS["red"])
    for seed in range(5):
        lay = layout(scene, seed)
        for t in (0.0, 3.3, 17.0):
            img = render(scene, lay, 160, 120, t=t).astype(int)
            mask = np.abs(img - red).sum(axis=2) < 10
            assert not mask[:, :20].any() and not mask[:, 140:].any()  # outside the centre 120x120
            blobs, _ = cv2.connectedComponents(mask.astype(np.uint8))  # background is label 0
            assert blobs - 1 == ["one", "two", "three"].index(count) + 1


def test_the_shipped_model_reads_captions_it_never_saw() -> None:
    """Through the product's loader: held-out captions find their picture far above chance (1/72)."""
    spec = str(CommonSettings().default_model_dir)
    card = ModelCard.read(spec)
    assert card.toy_world and not card.random_weights and card.thresholds["text_match"] > 0
    clip = load_clip(spec, device="cpu")
    _, heldout = split_scenes()
    frames = np.stack([render(s, layout(s, i), 160, 120) for i, s in enumerate(heldout)])
    sims = clip.embed_pixels(frames) @ clip.embed_texts([s.caption for s in heldout]).T
    truth = np.arange(len(heldout))
    assert (sims.argmax(axis=0) == truth).mean() > 0.5  # text -> image
    assert (sims.argmax(axis=1) == truth).mean() > 0.5  # image -> text
