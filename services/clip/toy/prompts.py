"""The generation cache's `prompt_match` for the toy CLIP, measured on every caption the toy world has.

A cache hit serves an already generated video instead of a new one: a false hit hands the caller another
scene, a miss only costs a generation. So the threshold must sit above *every* pair of captions of
different scenes, not a sample of them (60 captions once gave 0.975, and 24 pairs of the 720 canonical
captions score above it). The toy world is finite — 720 scenes in 4 phrasings each — so the whole set is
measured: the nearest two captions of different scenes, and the threshold a margin above them. Paraphrases
of one scene (the hits the cache exists for) are reported against that threshold; on the toy model they
overlap the nearest other captions, so recall is what is given up for a cache that never serves the
wrong scene.

Run: `clipstream model measure-prompts [MODEL_DIR] [--write]` (writes the result into the model card).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from services.clip.card import CARD_FILE
from services.clip.toy.world import Scene, all_scenes

# The threshold's least distance above the nearest two different captions. Embedding the same captions in
# other batch shapes or thread counts moves a score by at most 4.2e-7 (measured on CPU); the cut is then
# rounded up to the 4 decimals thresholds are stated in, so the margin is 1e-5 or more.
MIN_MARGIN = 1e-5
Embed = Callable[[Sequence[str]], np.ndarray]  # captions -> L2-normalised (N, dim)


@dataclass(frozen=True)
class PromptMargin:
    set: str
    captions: int
    different_pairs: int  # pairs of captions of different scenes: none may score at or above the threshold
    nearest_other: float  # the highest score of two captions of different scenes
    nearest_other_pair: tuple[str, str]
    threshold: float
    margin: float  # threshold - nearest_other
    paraphrase_pairs: int  # pairs of phrasings of one scene: what the cache should hit
    paraphrase_min: float
    paraphrase_p1: float
    paraphrase_recall: float  # share of paraphrase pairs at or above the threshold

    def report(self) -> dict[str, Any]:
        """Rounded for the model card."""
        out = asdict(self)
        for key in ("nearest_other", "margin", "paraphrase_min", "paraphrase_p1", "paraphrase_recall"):
            out[key] = round(out[key], 6)
        out["nearest_other_pair"] = list(self.nearest_other_pair)
        return out | {"command": "clipstream model measure-prompts --write"}


def captions(scenes: Sequence[Scene]) -> tuple[list[str], np.ndarray]:
    """Every phrasing of every scene, and the scene index of each."""
    texts = [c for s in scenes for c in s.captions()]
    owner = np.repeat(np.arange(len(scenes)), [len(s.captions()) for s in scenes])
    return texts, owner


def measure(embed: Embed, scenes: Sequence[Scene] | None = None) -> PromptMargin:
    """The threshold above every pair of captions of different scenes (all pairs of the whole set)."""
    scenes = all_scenes() if scenes is None else scenes
    texts, owner = captions(scenes)
    return measure_vectors(texts, owner, embed(texts))


def measure_vectors(texts: Sequence[str], owner: np.ndarray, vectors: np.ndarray) -> PromptMargin:
    """`measure` on captions already embedded: `owner[k]` is the scene of `texts[k]`."""
    vectors = np.asarray(vectors, dtype=np.float64)
    scores = vectors @ vectors.T
    i, j = np.triu_indices(len(texts), k=1)
    pair_scores, same = scores[i, j], owner[i] == owner[j]
    other, paraphrase = pair_scores[~same], pair_scores[same]
    worst = int(np.flatnonzero(~same)[np.argmax(other)])
    nearest = float(other.max())
    threshold = math.ceil((nearest + MIN_MARGIN) * 1e4) / 1e4
    return PromptMargin(
        set=f"every toy-world caption: {len(set(owner.tolist()))} scenes in all their phrasings "
        f"({len(texts)} captions), all pairs",
        captions=len(texts),
        different_pairs=int(other.size),
        nearest_other=nearest,
        nearest_other_pair=(texts[i[worst]], texts[j[worst]]),
        threshold=threshold,
        margin=threshold - nearest,
        paraphrase_pairs=int(paraphrase.size),
        paraphrase_min=float(paraphrase.min()),
        paraphrase_p1=float(np.quantile(paraphrase, 0.01)),
        paraphrase_recall=float((paraphrase >= threshold).mean()),
    )


def write_card(model_dir: Path, result: PromptMargin) -> None:
    """The measurement into the model card's report, and its threshold into the card's thresholds."""
    path = model_dir / CARD_FILE
    card = json.loads(path.read_text())
    card.setdefault("report", {})["prompt_match"] = result.report()
    card.setdefault("thresholds", {})["prompt_match"] = result.threshold
    path.write_text(json.dumps(card, indent=2) + "\n")
