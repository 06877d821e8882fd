"""`clipstream calibrate`: the served model's thresholds, estimated from the catalogue itself.

No labels are needed. Positives are copies of the catalogue's own keyframes (their stored thumbnails)
altered as re-uploads are altered — re-encoded, resized, cropped, letterboxed, mirrored — for the
near-duplicate threshold, and altered harder (a smaller crop, other light) for "no good match" of image
queries; negatives are the best-scoring segment of any *other* video for the same altered picture. For
text, each video's title and tags are the positive query of that video and a negative of every other
one. The cut maximising F1 between the two score sets is written to the thresholds file in settings, so
it works for whichever model is served: every model's scores sit on their own scale. Only what was
measured is written: every other threshold of the model (the cache's `prompt_match`, a cut that did not
separate this time) keeps its value, and the run says what changed.
"""

from __future__ import annotations

import base64
import io
import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageEnhance, ImageOps

from services.clip.routing import ModelRouter, Target
from services.clip.thresholds import Choice, ThresholdBook, Thresholds, choose_threshold
from services.common.errors import PermanentError
from services.common.filters import Filters
from services.common.triton import ClipClient
from services.common.vectors import SegmentStore
from services.common.vectors.layout import SEGMENTS_ALIAS

log = logging.getLogger(__name__)

Picture = Image.Image
MILD: dict[str, Callable[[Picture, np.random.Generator], Picture]] = {
    "jpeg_q20": lambda im, _: _jpeg(im, 20),
    "half_size": lambda im, _: im.resize((max(8, im.width // 2), max(8, im.height // 2)), Image.Resampling.BILINEAR),
    "crop_80": lambda im, _: ImageOps.crop(im, (round(im.width * 0.1), round(im.height * 0.1))),
    "letterbox": lambda im, _: ImageOps.expand(im, (0, round(im.height * 0.15)), fill=(0, 0, 0)),
    "mirror": lambda im, _: ImageOps.mirror(im),
    "darker": lambda im, _: ImageEnhance.Brightness(im).enhance(0.8),
}


def _strong(im: Picture, rng: np.random.Generator) -> Picture:
    """A different framing and light of the same moment: what a user's own photo of it may look like."""
    share = rng.uniform(0.5, 0.7)
    w, h = round(im.width * share), round(im.height * share)
    x, y = int(rng.integers(0, im.width - w + 1)), int(rng.integers(0, im.height - h + 1))
    out = im.crop((x, y, x + w, y + h))
    out = ImageEnhance.Color(out).enhance(float(rng.uniform(0.6, 1.4)))
    return ImageEnhance.Brightness(out).enhance(float(rng.uniform(0.75, 1.25)))


def _jpeg(im: Picture, quality: int) -> Picture:
    buf = io.BytesIO()
    im.save(buf, format="JPEG", quality=quality)
    return Image.open(io.BytesIO(buf.getvalue())).convert("RGB")


@dataclass
class Keyframe:
    video_id: str
    vector: np.ndarray
    picture: Picture


@dataclass
class Calibration:
    target: Target
    videos: int
    keyframes: int
    choices: dict[str, Choice] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    before: Thresholds | None = None  # the model's thresholds before the run (with what it ships)
    after: Thresholds | None = None  # what the run wrote (None with write=False)

    def changes(self) -> dict[str, tuple[float | None, float | None]]:
        """(old, new) of every threshold the run changed."""
        return self.before.changes(self.after) if self.before is not None and self.after is not None else {}

    def write(self, book: ThresholdBook, *specs: str) -> None:
        """What was measured, over the model's current thresholds (calibrated, else shipped in `specs`):
        whatever was not measured keeps its value."""
        self.before, self.after = book.update(self.target.model, self.thresholds(), *specs)

    def summary(self) -> list[str]:
        """One line a threshold: old -> new where the run changed it, else its value and why it stayed;
        nothing when the run did not write."""
        if self.before is None or self.after is None:
            return []
        changed = self.changes()
        lines = []
        for name, value in self.after.values().items():
            if name in changed:
                lines.append(f"{name}: {_shown(changed[name][0])} -> {_shown(value)}")
            else:
                lines.append(f"{name}: {_shown(value)} ({'measured, unchanged' if name in self.choices else 'kept'})")
        return lines

    def consider(self, name: str, positives: np.ndarray, negatives: np.ndarray, beta: float = 1.0) -> None:
        """Keep the best cut only if it separates the two sets better than chance: the model may simply
        not tell this catalogue's videos apart (the toy model on real footage), and a cut it cannot make
        must not be written as if it could."""
        if positives.size == 0 or negatives.size == 0:
            self.skipped[name] = "no scores to compare"
            return
        choice = choose_threshold(positives, negatives, beta=beta)
        if choice.separates():
            self.choices[name] = choice
        else:
            self.skipped[name] = (
                f"no separation: the best cut ({choice.threshold:.4f}) has precision {choice.precision:.3f}, "
                f"no better than calling everything a match ({choice.chance:.3f})"
            )

    def thresholds(self) -> Thresholds:
        c = self.choices
        return Thresholds(
            text_match=c["text_match"].threshold if "text_match" in c else None,
            image_match=c["image_match"].threshold if "image_match" in c else None,
            duplicate=c["duplicate"].threshold if "duplicate" in c else None,
            source="calibrate",
            measured={k: v.as_dict() for k, v in c.items()} | {"videos": self.videos, "keyframes": self.keyframes},
        )


class Calibrator:
    def __init__(self, store: SegmentStore, clip: ClipClient, book: ThresholdBook, *model_specs: str) -> None:
        """`model_specs`: model folders whose shipped thresholds count as the model's current ones (besides
        the one recorded on the collection), e.g. the configured model."""
        self.store, self.clip, self.book, self.model_specs = store, clip, book, model_specs

    def run(
        self,
        tenant: str | None = None,
        max_keyframes: int = 300,
        seed: int = 0,
        write: bool = True,
        progress: Callable[[str], None] = log.info,
    ) -> Calibration:
        target = ModelRouter(self.store).target()
        if target is None:
            raise PermanentError("nothing is indexed yet: calibrate needs a catalogue", reason="empty_catalogue")
        scope = Filters(tenant=tenant).compile() if tenant else ""
        rng = np.random.default_rng(seed)
        keyframes, texts, videos = self._sample(target, scope, max_keyframes, rng)
        if videos < 2:
            raise PermanentError(
                f"calibration needs at least two indexed videos, found {videos}", reason="catalogue_too_small"
            )
        progress(f"{videos} videos, {len(keyframes)} keyframes sampled from {target.collection}")
        result = Calibration(target, videos, len(keyframes))
        names = list(MILD)
        mild = [MILD[names[i % len(names)]](k.picture, rng) for i, k in enumerate(keyframes)]
        # a false duplicate costs more than a missed one: precision weighs more (F0.5)
        result.consider("duplicate", *self._image_scores(target, scope, keyframes, mild), beta=0.5)
        strong = [_strong(k.picture, rng) for k in keyframes]
        result.consider("image_match", *self._image_scores(target, scope, keyframes, strong))
        if len(texts) >= 2:
            result.consider("text_match", *self._text_scores(target, scope, texts, videos))
        else:
            result.skipped["text_match"] = "fewer than two videos have a title or tags"
        for name, choice in result.choices.items():
            progress(f"{name}: {choice.as_dict()}")
        if write:
            result.write(self.book, target.spec, *self.model_specs)
        return result

    def _sample(
        self, target: Target, scope: str, max_keyframes: int, rng: np.random.Generator
    ) -> tuple[list[Keyframe], dict[str, str], int]:
        """A uniform sample of keyframes (reservoir: the catalogue is streamed, never held) and each video's
        descriptive text."""
        reservoir: list[Keyframe] = []
        texts: dict[str, str] = {}
        seen = 0
        fields = ["video_id", "vector", "thumb", "title", *(f"tag{i}" for i in range(8))]
        for batch in self.store.iter_rows(target.collection, fields, scope, batch=200):
            for row in batch:
                text = _describe(row)
                if text:
                    texts.setdefault(row["video_id"], text)
                else:
                    texts.setdefault(row["video_id"], "")
                if not row.get("thumb"):
                    continue
                seen += 1
                slot = seen - 1 if len(reservoir) < max_keyframes else int(rng.integers(seen))
                if slot < max_keyframes:
                    picture = Image.open(io.BytesIO(base64.b64decode(row["thumb"]))).convert("RGB")
                    keyframe = Keyframe(row["video_id"], np.asarray(row["vector"], dtype=np.float32), picture)
                    if slot == len(reservoir):
                        reservoir.append(keyframe)
                    else:
                        reservoir[slot] = keyframe
        videos = len(texts)
        return reservoir, {v: t for v, t in texts.items() if t}, videos

    def _embed_pictures(self, target: Target, pictures: Sequence[Picture]) -> np.ndarray:
        out = []
        for start in range(0, len(pictures), 32):
            chunk = [np.asarray(p, dtype=np.uint8) for p in pictures[start : start + 32]]
            vectors, model = self.clip.embed_images(chunk)
            _same_model(target, model.version)
            out.append(vectors)
        return np.concatenate(out)

    def _image_scores(
        self, target: Target, scope: str, keyframes: Sequence[Keyframe], altered: Sequence[Picture]
    ) -> tuple[np.ndarray, np.ndarray]:
        """Positive: the altered copy against its own segment. Negative: against the best other video."""
        queries = self._embed_pictures(target, altered)
        pos, neg = [], []
        for k, q in zip(keyframes, queries, strict=True):
            pos.append(float(q @ (k.vector / max(np.linalg.norm(k.vector), 1e-12))))
            hits = self.store.best_segments([q.tolist()], 2, expr=scope, collection=_segments(target))
            others = [h.score for h in hits if h.video_id != k.video_id]
            if others:
                neg.append(others[0])
        return np.asarray(pos), np.asarray(neg)

    def _text_scores(
        self, target: Target, scope: str, texts: dict[str, str], videos: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """A video's own title/tags against its best segment (positive) and every other video's (negatives)."""
        ids = list(texts)
        vectors, model = self.clip.embed_texts([texts[v] for v in ids])
        _same_model(target, model.version)
        pos: list[float] = []
        neg: list[float] = []
        for video_id, q in zip(ids, vectors, strict=True):
            hits = self.store.best_segments([q.tolist()], min(videos, 100), expr=scope, collection=_segments(target))
            for h in hits:
                (pos if h.video_id == video_id else neg).append(h.score)
        return np.asarray(pos), np.asarray(neg)


def _shown(value: float | None) -> str:
    return "unset" if value is None else f"{value:.4f}"


def _segments(target: Target) -> str:
    return target.collection if target.collection else SEGMENTS_ALIAS


def _same_model(target: Target, version: str) -> None:
    if version != target.model.version:
        raise PermanentError(
            f"Triton serves model {version}, the catalogue holds {target.model.name}:{target.model.version}: "
            "calibrate the model that is served",
            reason="model_mismatch",
        )


def _describe(row: dict[str, object]) -> str:
    """Title and tags as a query: file-name-like titles become words ("aerial_sunset-4k" → "aerial sunset 4k")."""
    words = [str(row.get("title") or ""), *(str(row.get(f"tag{i}") or "") for i in range(8))]
    return re.sub(r"[\s_\-.]+", " ", " ".join(w for w in words if w)).strip()
