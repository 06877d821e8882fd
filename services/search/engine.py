"""Query embedding + Milvus search. The query must be embedded by the model the served collection holds."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from services.common.filters import Filters
from services.common.messages import ModelRef
from services.common.triton import ClipClient
from services.common.vectorstore import SegmentHit, SegmentStore, segments_collection
from services.decoder.decode import DecodeOptions, decode_video
from services.decoder.errors import DecodeError
from services.decoder.segments import SegmentPolicy
from services.embedder.service import jpeg_to_pixels
from services.search.settings import SearchSettings


class QueryError(ValueError):
    """The query itself is unusable (bad image, undecodable video): a 4xx, not a server fault."""


class SearchEngine:
    def __init__(self, settings: SearchSettings) -> None:
        self.settings = settings
        self.clip = ClipClient(settings.common.triton_grpc_url)
        self.store = SegmentStore(settings.common)

    def by_text(self, text: str, limit: int = 10, filters: Filters | None = None) -> list[SegmentHit]:
        if not text.strip():
            raise QueryError("empty text query")
        emb, model = self.clip.embed_texts([text])
        return self._search(emb[:1], model, limit, filters)

    def by_image(self, data: bytes, limit: int = 10, filters: Filters | None = None) -> list[SegmentHit]:
        try:
            with Image.open(io.BytesIO(data)) as img:
                pixels = np.asarray(img.convert("RGB"), dtype=np.uint8)
        except (UnidentifiedImageError, OSError) as exc:
            raise QueryError(f"not a readable image: {exc}") from exc
        emb, model = self.clip.embed_images([pixels])
        return self._search(emb[:1], model, limit, filters)

    def by_video(self, path: Path, limit: int = 10, filters: Filters | None = None) -> list[SegmentHit]:
        policy = SegmentPolicy(
            mode="fixed", fixed_segment_s=self.settings.query_frame_seconds, max_segments=self.settings.query_max_frames
        )
        try:
            decoded = decode_video(path, DecodeOptions(segments=policy))
        except DecodeError as exc:
            raise QueryError(exc.detail) from exc
        images = [jpeg_to_pixels(k.jpeg) for s in decoded.segments for k in s.keyframes]
        emb, model = self.clip.embed_images(images)
        return self._search(emb, model, limit, filters)

    def _search(self, vectors: np.ndarray, model: ModelRef, limit: int, filters: Filters | None) -> list[SegmentHit]:
        limit = max(1, min(limit, self.settings.max_limit))
        served = self.store.served_collection()
        if served is None:
            return []
        if served != segments_collection(model):
            raise RuntimeError(f"query model {model.name}:{model.version} does not match served collection {served}")
        return self.store.best_segments(vectors.tolist(), limit, expr=(filters or Filters()).compile())
