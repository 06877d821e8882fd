"""`clipstream calibrate` writes what it measured and nothing else: the model's other thresholds (the
cache's `prompt_match`, which no catalogue can measure; a cut that did not separate this time) keep their
values, and the run says what it changed."""

import json
from pathlib import Path

import numpy as np

from services.clip.loader import load_clip
from services.clip.random_model import write_random_clip
from services.clip.routing import Target
from services.clip.thresholds import ThresholdBook
from services.common.messages import ModelRef
from services.search.calibrate import Calibration

SHIPPED = {"text_match": 0.8, "duplicate": 0.9, "prompt_match": 0.97}


def _model(tmp_path: Path) -> tuple[ModelRef, str]:
    """A model folder whose card ships thresholds, as the toy model's does."""
    folder = write_random_clip(tmp_path / "model", seed=1)
    card = json.loads((folder / "clipstream.json").read_text()) | {"thresholds": SHIPPED}
    (folder / "clipstream.json").write_text(json.dumps(card))
    return load_clip(str(folder)).ref, str(folder)


def _run(ref: ModelRef, spec: str, name: str, positives: list[float], negatives: list[float]) -> Calibration:
    run = Calibration(Target("segments", ref, spec), videos=3, keyframes=9)
    run.consider(name, np.array(positives), np.array(negatives))
    assert name in run.choices, run.skipped
    return run


def test_calibrate_keeps_every_threshold_it_did_not_measure(tmp_path: Path) -> None:
    ref, spec = _model(tmp_path)
    book = ThresholdBook(tmp_path / "thresholds.json")
    run = _run(ref, spec, "duplicate", [0.95, 0.97, 0.99], [0.5, 0.6, 0.7])
    run.skipped["text_match"] = "no separation"
    run.write(book, spec)
    measured = run.choices["duplicate"].threshold
    written = ThresholdBook(book.path).get(ref)  # the file alone, without the model folder to fall back on
    assert written.duplicate == measured and written.source == "calibrate"
    assert (written.text_match, written.prompt_match, written.image_match) == (0.8, 0.97, None)
    assert written.measured["kept"] == {"text_match": "model", "prompt_match": "model"}
    assert run.changes() == {"duplicate": (0.9, measured)}
    assert run.summary() == [
        "text_match: 0.8000 (kept)",
        "image_match: unset (kept)",
        f"duplicate: 0.9000 -> {measured:.4f}",
        "prompt_match: 0.9700 (kept)",
    ]


def test_a_second_calibration_keeps_what_the_first_measured(tmp_path: Path) -> None:
    ref, spec = _model(tmp_path)
    book = ThresholdBook(tmp_path / "thresholds.json")
    first = _run(ref, spec, "duplicate", [0.95, 0.97, 0.99], [0.5, 0.6, 0.7])
    first.write(book, spec)
    second = _run(ref, spec, "text_match", [0.3, 0.35], [0.1, 0.2])
    second.write(book, spec)
    written = ThresholdBook(book.path).get(ref)
    assert written.duplicate == first.choices["duplicate"].threshold  # not the shipped 0.9
    assert written.text_match == second.choices["text_match"].threshold
    assert written.prompt_match == 0.97
    assert written.measured["duplicate"] == first.choices["duplicate"].as_dict()  # its evidence travels with it
    assert second.changes() == {"text_match": (0.8, second.choices["text_match"].threshold)}


def test_a_run_that_does_not_write_changes_nothing(tmp_path: Path) -> None:
    ref, spec = _model(tmp_path)
    run = _run(ref, spec, "duplicate", [0.95, 0.97, 0.99], [0.5, 0.6, 0.7])
    assert run.changes() == {} and run.summary() == []
    assert not (tmp_path / "thresholds.json").exists()
