import json
from pathlib import Path

import numpy as np
import pytest

from services.clip.loader import load_clip
from services.clip.random_model import write_random_clip
from services.clip.thresholds import ThresholdBook, Thresholds, choose_threshold, model_key
from services.common.messages import ModelRef

MODEL = ModelRef(name="m", version="abc", dim=4)


def test_a_clean_separation_cuts_in_the_middle_of_the_gap() -> None:
    choice = choose_threshold(np.array([0.8, 0.9, 0.95]), np.array([0.2, 0.5, 0.6]))
    assert choice.threshold == pytest.approx(0.7)
    assert (choice.precision, choice.recall) == (1.0, 1.0)


def test_overlapping_scores_trade_precision_for_recall_by_f_beta() -> None:
    pos = np.array([0.55, 0.8, 0.85, 0.9])
    neg = np.array([0.1, 0.2, 0.6])
    # below 0.55: every positive and the 0.6 negative (F1 0.889); at 0.7: 3 of 4 positives, no negative (0.857)
    balanced = choose_threshold(pos, neg)
    assert 0.2 < balanced.threshold < 0.55
    assert (balanced.precision, balanced.recall) == (0.8, 1.0)
    strict = choose_threshold(pos, neg, beta=0.5)  # precision weighs more: F0.5 0.833 vs 0.9375
    assert 0.6 < strict.threshold < 0.8
    assert (strict.precision, strict.recall) == (1.0, 0.75)


def test_no_scores_is_an_error() -> None:
    with pytest.raises(ValueError):
        choose_threshold(np.array([]), np.array([0.1]))


def test_calibrated_thresholds_win_over_the_models_own(tmp_path: Path) -> None:
    model_dir = write_random_clip(tmp_path / "model", seed=1)
    card = json.loads((model_dir / "clipstream.json").read_text()) | {"thresholds": {"text_match": 0.8}}
    (model_dir / "clipstream.json").write_text(json.dumps(card))
    book = ThresholdBook(tmp_path / "settings" / "thresholds.json")
    # a folder's thresholds count only for the weights in it
    assert book.get(MODEL, str(model_dir)).text_match is None
    ref = load_clip(str(model_dir)).ref
    shipped = book.get(ref, "", str(tmp_path / "missing"), str(model_dir))
    assert (shipped.text_match, shipped.source, shipped.match("image")) == (0.8, "model", None)
    book.put(ref, Thresholds(text_match=0.3, image_match=0.6, duplicate=0.9, source="calibrate"))
    written = book.get(ref, str(model_dir))
    assert (written.match("text"), written.match("image"), written.duplicate) == (0.3, 0.6, 0.9)
    # another model's entry is not this one's
    other = ModelRef(name="m", version="def", dim=4)
    assert book.get(other, str(model_dir)).text_match is None
    assert model_key(ref) in json.loads(book.path.read_text())


def test_a_reader_sees_a_rewrite_without_restarting(tmp_path: Path) -> None:
    path = tmp_path / "thresholds.json"
    reader, writer = ThresholdBook(path), ThresholdBook(path)
    writer.put(MODEL, Thresholds(text_match=0.3))
    assert reader.get(MODEL).text_match == 0.3
    writer.put(MODEL, Thresholds(text_match=0.4, duplicate=0.95))
    assert reader.get(MODEL).text_match == 0.4
    assert not list(tmp_path.glob(".thresholds-*")), "no temporary file left behind"


def test_an_entry_without_a_threshold_falls_back_to_the_models_own(tmp_path: Path) -> None:
    """A thresholds file written before calibrate kept what it did not measure lacks `prompt_match`: the
    model's shipped value still counts (calibrated values win), never the product-wide default."""
    model_dir = write_random_clip(tmp_path / "model", seed=1)
    card = json.loads((model_dir / "clipstream.json").read_text()) | {"thresholds": {"prompt_match": 0.97}}
    (model_dir / "clipstream.json").write_text(json.dumps(card))
    ref = load_clip(str(model_dir)).ref
    book = ThresholdBook(tmp_path / "thresholds.json")
    book.put(ref, Thresholds(duplicate=0.9, source="calibrate"))
    found = book.get(ref, str(model_dir))
    assert (found.duplicate, found.prompt_match, found.text_match, found.source) == (0.9, 0.97, None, "calibrate")
    assert book.get(ref).prompt_match is None  # only the folder holding these weights ships them


def test_update_writes_the_measured_values_over_the_current_ones(tmp_path: Path) -> None:
    book = ThresholdBook(tmp_path / "thresholds.json")
    book.put(MODEL, Thresholds(text_match=0.3, prompt_match=0.97, source="calibrate"))
    before, after = book.update(MODEL, Thresholds(text_match=0.35, duplicate=0.9, source="calibrate"))
    assert before.changes(after) == {"text_match": (0.3, 0.35), "duplicate": (None, 0.9)}
    assert book.get(MODEL).values() == {"text_match": 0.35, "image_match": None, "duplicate": 0.9, "prompt_match": 0.97}
