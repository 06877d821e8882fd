"""Query embedding + Milvus search: text, image, video and similar-to-video, best segment per video.

A query must be embedded by the model of the collection the alias serves. Normally Triton serves it;
right after `clipstream reindex` switches the alias and before Triton is rolled to the new model, the
engine embeds queries in-process with the model recorded on the collection, so searches keep answering.
"""

from __future__ import annotations

import functools
import io
import logging
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from services.common.clip.loader import LoadedClip, load_clip
from services.common.errors import PermanentError
from services.common.filters import Filters
from services.common.messages import ModelRef
from services.common.triton import ClipClient
from services.common.vectors import SegmentHit, SegmentStore, videos_collection
from services.media.decode import DecodeOptions, decode_video
from services.media.errors import DecodeError
from services.media.images import jpeg_to_pixels
from services.media.segments import SegmentPolicy
from services.search.settings import SearchSettings

log = logging.getLogger(__name__)


class QueryError(PermanentError):
    """The query itself is unusable (bad image, undecodable video): a 4xx, not a server fault."""

    reason = "bad_query"


class NotFound(PermanentError):
    """No such video (for this tenant)."""

    reason = "not_found"


@functools.lru_cache(maxsize=2)
def _in_process(spec: str) -> LoadedClip:
    return load_clip(spec)


class SearchEngine:
    def __init__(self, settings: SearchSettings) -> None:
        self.settings = settings
        self.clip = ClipClient(settings.common.triton_grpc_url)
        self.store = SegmentStore(settings.common)
        self._models: dict[str, tuple[ModelRef, str]] = {}

    # --- queries ----------------------------------------------------------------------------------------

    def by_text(self, text: str, limit: int = 10, filters: Filters | None = None, offset: int = 0) -> list[SegmentHit]:
        if not text.strip():
            raise QueryError("empty text query")
        if len(text) > 1000:
            raise QueryError("text query longer than 1000 characters")
        found = self._embed(lambda c: c.embed_texts([text]), lambda m: m.embed_texts([text]))
        return self._search(found, limit, offset, filters)

    def by_image(
        self, data: bytes, limit: int = 10, filters: Filters | None = None, offset: int = 0
    ) -> list[SegmentHit]:
        try:
            with Image.open(io.BytesIO(data)) as img:
                if img.width * img.height > 40_000_000:
                    raise QueryError(f"image of {img.width}x{img.height} is too large")
                pixels = np.asarray(img.convert("RGB"), dtype=np.uint8)
        except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as exc:
            raise QueryError(f"not a readable image: {exc}") from exc
        found = self._embed(lambda c: c.embed_images([pixels]), lambda m: m.embed_pixels(pixels[None]))
        return self._search(found, limit, offset, filters)

    def by_video(
        self, path: Path, limit: int = 10, filters: Filters | None = None, offset: int = 0
    ) -> list[SegmentHit]:
        policy = SegmentPolicy(
            mode="fixed", fixed_segment_s=self.settings.query_frame_seconds, max_segments=self.settings.query_max_frames
        )
        try:
            decoded = decode_video(path, DecodeOptions(segments=policy))
        except DecodeError as exc:
            raise QueryError(f"{exc.reason}: {exc.detail}") from exc
        images = [jpeg_to_pixels(k.jpeg) for s in decoded.segments for k in s.keyframes]
        found = self._embed(
            lambda c: c.embed_images(images), lambda m: np.concatenate([m.embed_pixels(i[None]) for i in images])
        )
        return self._search(found, limit, offset, filters)

    def similar(
        self, video_id: str, limit: int = 10, filters: Filters | None = None, offset: int = 0
    ) -> list[SegmentHit]:
        """Videos like this one: its mean vector against every segment, itself excluded."""
        served = self.store.served_collection()
        if served is None:
            raise NotFound(video_id)
        model, _ = self._model_of(served)
        vector = self.store.video_vector(video_id, _tenant_scope(filters), videos_collection(model))
        if vector is None:
            raise NotFound(video_id)
        hits = self._search((np.asarray([vector]), served), limit + 1, offset, filters)
        return [h for h in hits if h.video_id != video_id][:limit]

    def video(self, video_id: str, filters: Filters | None = None) -> tuple[dict[str, object], list[dict[str, object]]]:
        found = self.store.video(video_id, _tenant_scope(filters))
        if found is None:
            raise NotFound(video_id)
        return found

    # --- plumbing ---------------------------------------------------------------------------------------

    def _model_of(self, collection: str) -> tuple[ModelRef, str]:
        if collection not in self._models:
            self._models[collection] = self.store.model_of(collection)
        return self._models[collection]

    def _embed(
        self,
        remote: Callable[[ClipClient], tuple[np.ndarray, ModelRef]],
        local: Callable[[LoadedClip], np.ndarray],
    ) -> tuple[np.ndarray, str]:
        """Query vectors and the concrete collection they belong to (resolved once: the alias may move)."""
        served = self.store.served_collection()
        if served is None:
            return np.zeros((0, 0), dtype=np.float32), ""
        want, spec = self._model_of(served)
        vectors, model = remote(self.clip)
        if model.version == want.version:
            return vectors, served
        if not spec:
            raise RuntimeError(
                f"Triton serves {model.name}:{model.version}, the served collection needs "
                f"{want.name}:{want.version}, and no loadable spec is recorded for it"
            )
        log.warning(
            "embedding queries in-process until Triton serves the collection's model",
            extra={"served": served, "triton_model": model.version, "collection_model": want.version},
        )
        return local(_in_process(spec)), served

    def _search(
        self, found: tuple[np.ndarray, str], limit: int, offset: int, filters: Filters | None
    ) -> list[SegmentHit]:
        vectors, collection = found
        if vectors.size == 0:
            return []
        limit = max(1, min(limit, self.settings.max_limit))
        offset = max(0, min(offset, self.settings.max_offset))
        expr = (filters or Filters()).compile()
        return self.store.best_segments(vectors.tolist(), limit, offset=offset, expr=expr, collection=collection)


def _tenant_scope(filters: Filters | None) -> str:
    return Filters(tenant=filters.tenant).compile() if filters and filters.tenant else ""


def hits_to_json(hits: Sequence[SegmentHit]) -> list[dict[str, object]]:
    return [
        {
            "video_id": h.video_id,
            "score": round(h.score, 6),
            "start_s": h.start_s,
            "end_s": h.end_s,
            "keyframe_s": float(h.fields.get("keyframe_s", h.start_s)),
            "segment_index": int(h.fields.get("segment_index", 0)),
            **{
                k: h.fields.get(k)
                for k in ("title", "creator", "tenant", "uri", "uploaded_at", "width", "height", "duration_s")
            },
            "tags": [t for i in range(8) if (t := h.fields.get(f"tag{i}"))],
            "thumbnail": f"data:image/jpeg;base64,{h.fields['thumb']}" if h.fields.get("thumb") else None,
        }
        for h in hits
    ]
