"""What the checks need, read from the catalogue and the model: a video's segment vectors and metadata,
its prompt and references as vectors of the collection's model."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from services.clip.routing import ModelRouter
from services.common.errors import PermanentError
from services.common.filters import Filters
from services.common.messages import QC_PROMPT_KEY, QC_REFERENCES_KEY, ModelRef
from services.common.triton import ClipClient
from services.common.vectors import METADATA, SegmentStore
from services.media.errors import DecodeError
from services.media.faces import crop, detect, face_model
from services.media.images import ImageLimits, fit_pixels
from services.media.sources import SourcePolicy, open_source
from services.quality.checks import SegmentFace, SegmentVector, Vectors, main_faces, unit

if TYPE_CHECKING:
    from services.clip.loader import LoadedClip  # torch: only where a model runs in-process

SEGMENT_FIELDS = ["segment_index", "start_s", "end_s", "vector", METADATA]
CUTS_KEY = "cuts_allowed"  # metadata: the generated video has intended cuts (temporal check inside shots only)


class QualityError(PermanentError):
    """A QC request or a video's QC metadata that can never be checked as it is."""

    def __init__(self, detail: str, reason: str = "bad_qc_input") -> None:
        super().__init__(detail, reason)


@dataclass(frozen=True)
class Subject:
    video_id: str
    segments: list[SegmentVector]
    metadata: dict[str, Any]

    @property
    def prompt(self) -> str | None:
        value = self.metadata.get(QC_PROMPT_KEY)
        return value if isinstance(value, str) and value.strip() else None

    @property
    def references(self) -> list[str]:
        value = self.metadata.get(QC_REFERENCES_KEY)
        return value.split() if isinstance(value, str) else []

    @property
    def cuts_allowed(self) -> bool:
        return self.metadata.get(CUTS_KEY) is True


def load_subject(
    store: SegmentStore, collection: str, video_id: str, tenant: str | None, max_segments: int
) -> Subject | None:
    """The video's segments (first `max_segments`, in order) in `collection`, scoped to `tenant`; None when
    it has none (unknown, another tenant's, or deleted)."""
    expr = Filters(tenant=tenant or None, video_ids=[video_id]).compile()
    rows = sorted(store.rows(expr, SEGMENT_FIELDS, collection=collection), key=lambda r: r["segment_index"])
    if not rows:
        return None
    segments = [
        SegmentVector(int(r["segment_index"]), float(r["start_s"]), float(r["end_s"]), unit(r["vector"])[0])
        for r in rows[:max_segments]
    ]
    return Subject(video_id, segments, dict(rows[0].get(METADATA) or {}))


def check_prompt(prompt: str, max_chars: int) -> str:
    if not prompt.strip():
        raise QualityError("empty prompt", "empty_prompt")
    if len(prompt) > max_chars:
        raise QualityError(f"prompt of {len(prompt)} characters, at most {max_chars}", "prompt_too_long")
    return prompt


def check_reference_count(count: int, max_references: int) -> None:
    if count > max_references:
        raise QualityError(f"{count} references, at most {max_references}", "too_many_references")


def read_reference(uri: str, policy: SourcePolicy, max_bytes: int, limits: ImageLimits) -> np.ndarray:
    """A reference image by URI, admitted by the same allowlists as a video source and read up to
    `max_bytes`. Refusals are permanent (`DecodeError`), a failing server transient (`SourceUnavailable`)."""
    with open_source(uri, replace(policy, max_bytes=max_bytes)) as source:
        if isinstance(source, Path):
            data = source.read_bytes()
        else:
            data = source.read(max_bytes + 1)
            if len(data) > max_bytes:
                raise DecodeError("too_large", f"reference {uri} is larger than {max_bytes} bytes")
    try:
        return fit_pixels(data, limits)
    except DecodeError as exc:
        raise DecodeError(exc.reason, f"reference {uri}: {exc.detail}") from exc


class _OneCollection:
    """The model router's catalogue, pinned to the collection an event names (not necessarily the served one)."""

    def __init__(self, store: SegmentStore, collection: str) -> None:
        self.store = store
        self.collection = collection

    def served_collection(self) -> str | None:
        return self.collection

    def model_of(self, collection: str) -> tuple[ModelRef, str]:
        return self.store.model_of(collection)


class CollectionEmbedder:
    """Texts and images as vectors of one collection's model: Triton when it serves that model, else the
    model loaded in-process from the spec recorded on the collection (as during a reindex)."""

    def __init__(self, store: SegmentStore, clip: ClipClient, collection: str) -> None:
        self.clip = clip
        self.router = ModelRouter(_OneCollection(store, collection))

    def texts(self, texts: Sequence[str]) -> Vectors:
        items = list(texts)
        vectors, _, _ = self.router.embed(lambda: self.clip.embed_texts(items), lambda m: m.embed_texts(items))
        return unit(vectors)

    def images(self, images: Sequence[np.ndarray]) -> Vectors:
        items = list(images)

        def local(model: LoadedClip) -> np.ndarray:
            return np.concatenate([model.embed_pixels(i[None]) for i in items])

        vectors, _, _ = self.router.embed(lambda: self.clip.embed_images(items), local)
        return unit(vectors)


def character_inputs(
    pictures: Sequence[np.ndarray],
    embed: Callable[[list[np.ndarray]], Vectors],
    store: SegmentStore,
    video_id: str,
    tenant: str,
    model: ModelRef,
    face_model_path: Path | None,
    segments: Sequence[SegmentVector],
) -> tuple[list[SegmentFace] | None, Vectors | None]:
    """What the character check needs, when a reference shows a face: each shot's main face (from the faces
    collection of what embeds faces: a face model given by path, else the video's model) and the reference
    faces embedded the same way (`embed`: the video's model). (None, None) when no reference shows a face."""
    crops = [crop(p, found[0]) for p in pictures if (found := detect(p))]
    if not crops:
        return None, None
    by_path = face_model(face_model_path)
    references = embed(crops) if by_path is None else by_path.embed(crops)
    stored = store.faces_of(video_id, tenant, by_path.ref if by_path is not None else model)
    return main_faces(segments, stored), unit(references)
