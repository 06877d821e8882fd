"""Query embedding + Milvus search: text, image, video and similar-to-video, best segment per video.

A query must be embedded by the model of the collection the alias serves. Normally Triton serves it;
right after `clipstream reindex` switches the alias and before Triton is rolled to the new model, the
engine embeds queries in-process with the model recorded on the collection, so searches keep answering.
"""

from __future__ import annotations

import json
import logging
import tempfile
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from services.clip.routing import ModelRouter, Target
from services.clip.thresholds import QueryKind, ThresholdBook
from services.common import errors
from services.common.filters import Filters
from services.common.messages import QC_PROMPT_KEY, QC_REFERENCES_KEY, ModelRef
from services.common.triton import ClipClient
from services.common.vectors import METADATA, VIDEOS_ALIAS, Cursor, SegmentHit, SegmentStore, videos_collection
from services.common.vectors.layout import FACES, MAX_TOPK
from services.media.decode import DecodeLimits, DecodeOptions
from services.media.errors import DecodeError
from services.media.faces import crop, detect, face_model
from services.media.images import fit_pixels, jpeg_to_pixels
from services.media.isolated import IsolatedDecoder
from services.media.segments import SegmentPolicy
from services.media.sources import SourcePolicy
from services.quality.checks import run_checks, unit
from services.quality.cohort import outliers as cohort_outliers
from services.quality.inspect import (
    QualityError,
    character_inputs,
    check_prompt,
    check_reference_count,
    load_subject,
    read_reference,
)
from services.search.cache import CacheEntry, Generation, entry_row, lookup_filter, new_entry_id, screen
from services.search.duplicates import collapse as collapsed
from services.search.duplicates import duplicate_neighbours, verdicts_of
from services.search.fusion import NAMED, fuse, words_found
from services.search.recommend import Example, candidate_filter, query_vector
from services.search.settings import SearchSettings
from services.text import sentences
from services.text.sentences import SentenceEncoder

if TYPE_CHECKING:  # torch: loaded only when a query is embedded in-process (services.clip.routing)
    from services.clip.loader import LoadedClip

log = logging.getLogger(__name__)


class QueryError(errors.InvalidRequest):
    """The query itself is unusable (bad image, undecodable video): a 400, not a server fault."""

    reason = "bad_query"


class NotFound(errors.NotFound):
    """No such video (for this tenant): a 404."""

    def __init__(self, video_id: str) -> None:
        super().__init__(f"no video {video_id!r}")


class Hits(list[SegmentHit]):
    """Best segments, best first, and the served model's "no good match" threshold for this kind of query
    (None when nobody measured one for the model: then no verdict is given)."""

    def __init__(self, hits: Sequence[SegmentHit] = (), match_threshold: float | None = None) -> None:
        super().__init__(hits)
        self.match_threshold = match_threshold

    @property
    def good_match(self) -> bool | None:
        if self.match_threshold is None:
            return None
        return bool(self) and bool(_good(self[0], self.match_threshold))


class SearchEngine:
    def __init__(self, settings: SearchSettings) -> None:
        self.settings = settings
        self._sentences: SentenceEncoder | None = None  # loaded on the first text query (onnxruntime)
        self._sentences_lock = threading.Lock()
        self.clip = ClipClient(settings.common.triton_grpc_url)
        self.store = SegmentStore(settings.common)
        self.router = ModelRouter(self.store)
        self.thresholds = ThresholdBook(settings.common.thresholds_path)
        policy = SegmentPolicy(
            mode="fixed", fixed_segment_s=settings.query_frame_seconds, max_segments=settings.query_max_frames
        )
        # a query video is the caller's own bytes (written by us) or a local path given to the CLI: the
        # upload allowlist does not apply, the format whitelist and the child's limits do
        self._videos = IsolatedDecoder(
            SourcePolicy(allowed_roots=[Path("/")], max_bytes=settings.max_upload_bytes),
            DecodeOptions(
                segments=policy,
                limits=DecodeLimits(time_budget_s=settings.query_decode_budget_s),
                fingerprint_interval_s=0,  # a query is matched by its vectors
            ),
            max_memory_bytes=settings.query_decode_max_memory_bytes,
            grace_s=10.0,
        )

    def close(self) -> None:
        """Stops the query decoder's child process: left to interpreter exit, its pipes close first and the
        pool's shutdown prints a traceback."""
        self._videos.close()

    def __enter__(self) -> SearchEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- queries ----------------------------------------------------------------------------------------

    def by_text(
        self,
        text: str,
        limit: int = 10,
        filters: Filters | None = None,
        offset: int = 0,
        collapse: bool = False,
        modes: Sequence[str] = ("visual", "text"),
        has_text: bool | None = None,
    ) -> Hits:
        """What segments show (`visual`: the CLIP search) and what is written on them (`text`: on-screen words),
        fused by reciprocal rank; each result says why it matched. `has_text` keeps only segments with (or
        without) words on screen."""
        if not text.strip():
            raise QueryError("empty text query")
        if len(text) > 1000:
            raise QueryError("text query longer than 1000 characters")
        if not modes or set(modes) - {"visual", "text"}:
            raise QueryError("modes: one or both of 'visual' and 'text'")
        limit = max(1, min(limit, self.settings.max_limit))
        offset = max(0, min(offset, self.settings.max_offset))
        deep = offset + limit if ("text" in modes or has_text is not None) else limit
        rankings: dict[str, list[SegmentHit]] = {}
        threshold = None
        if "visual" in modes:
            found = self._embed(lambda c: c.embed_texts([text]), lambda m: m.embed_texts([text]))
            if has_text is None:
                seen = self._search(found, deep, 0 if deep != limit else offset, filters, "text", collapse)
            else:
                seen = self._seen_with_text(found, deep, filters, has_text)
            threshold = seen.match_threshold
            rankings["visual"] = [_why(h, {"mode": "visual", "score": round(h.score, 6)}) for h in seen]
        if "text" in modes and has_text is not False:  # every text hit has words on screen
            rankings["text"] = self._written(text, deep, filters)
        if deep == limit and list(rankings) == ["visual"]:
            return Hits(rankings["visual"], threshold)  # the plain CLIP search, paged by Milvus
        fused = fuse(rankings)
        if collapse:  # the text ranking and a filtered visual one bring duplicates back: one per group
            ids = [h.video_id for h in fused]
            fused = [
                fused[i] for i in collapsed(ids, self.store.duplicates_of(ids, filters.tenant if filters else None))
            ]
        return Hits(fused[offset : offset + limit], threshold)

    def _check_columns(self, filters: Filters | None, collection: str) -> None:
        """A filter on a column the collection predates is the caller's 400, not Milvus's 500."""
        if filters and filters.min_faces is not None and FACES not in self.store.columns(collection):
            raise QueryError(
                f"{collection} was created before faces were counted: `min_faces` needs the catalogue "
                "re-embedded into new collections (`clipstream reindex`)"
            )
        if filters and filters.metadata and METADATA not in self.store.columns(collection):
            raise QueryError(
                f"{collection} was created before free metadata existed: its rows cannot be filtered on "
                "metadata until the catalogue is re-embedded into new collections (`clipstream reindex`)"
            )

    def _encoder(self) -> SentenceEncoder | None:
        with self._sentences_lock:  # concurrent first text queries load one encoder, not one each
            if self._sentences is None and sentences.ready(self.settings.text_encoder_dir):
                self._sentences = SentenceEncoder(self.settings.text_encoder_dir)
        return self._sentences

    def _written(self, text: str, want: int, filters: Filters | None) -> list[SegmentHit]:
        """Segments whose on-screen words match the query: those naming more of its words first, then by the
        words' embedding; a hit naming less than half of them counts only from `text_min_cosine`. The caller's
        filters apply through the served segment rows (which also give the results their fields); the text
        search widens until `want` videos survive them or it runs out."""
        encoder = self._encoder()
        target = self.router.target()
        if encoder is None or target is None:
            return []
        self._check_columns(filters, target.collection)
        vector = encoder.embed([text])[0].tolist()
        expr = (filters or Filters()).compile()
        fetch = max(50, 4 * want)
        while True:
            found = self.store.search_text(sentences.VERSION, vector, fetch, _tenant_scope(filters))
            scored = [(words_found(text, row["text"]), cosine, row) for cosine, row in found]
            scored = [s for s in scored if s[0] >= NAMED or s[1] >= self.settings.text_min_cosine]
            scored.sort(key=lambda s: (-s[0], -s[1]))
            keys = [(row["video_id"], int(row["segment_index"])) for _, _, row in scored]
            shown = self.store.segments_of(keys, target.model, expr, target.collection)
            hits: dict[str, SegmentHit] = {}
            for (share, cosine, row), key in zip(scored, keys, strict=True):
                if key in shown and key[0] not in hits:  # each video's best segment the filters admit
                    lines = json.loads(row["lines"])
                    why = {"mode": "text", "score": round(cosine, 6), "words_found": share, "lines": lines}
                    hits[key[0]] = SegmentHit(key[0], cosine, {**shown[key], "why": [why]})
            if len(hits) >= want or len(found) < fetch or fetch >= MAX_TOPK:
                return list(hits.values())[:want]
            fetch = min(MAX_TOPK, 4 * fetch)

    def _seen_with_text(
        self, found: tuple[np.ndarray, Target | None], want: int, filters: Filters | None, has_text: bool
    ) -> Hits:
        """The visual search over segments with (or without) words on screen: the nearest segments (not yet
        one per video), those whose text row exists (or not), then each video's best of them; the search
        widens until `want` videos are found or it runs out."""
        vectors, target = found
        if target is None or vectors.size == 0:
            return Hits()
        self._check_columns(filters, target.collection)
        expr = (filters or Filters()).compile()
        fetch = min(MAX_TOPK, max(256, 20 * want))
        while True:
            near = self.store.nearest(vectors.tolist(), fetch, expr, target.collection)[0]
            written = self.store.text_of(sentences.VERSION, [(v, i) for v, i, _ in near], _tenant_scope(filters))
            best: dict[str, tuple[int, float]] = {}
            for video_id, index, score in near:
                if ((video_id, index) in written) == has_text and video_id not in best:
                    best[video_id] = (index, score)
            if len(best) >= want or len(near) < fetch or fetch >= MAX_TOPK:
                break
            fetch = min(MAX_TOPK, 4 * fetch)
        rows = self.store.segments_of([(v, i) for v, (i, _) in best.items()], target.model, expr, target.collection)
        hits = [SegmentHit(v, score, rows[(v, i)]) for v, (i, score) in best.items() if (v, i) in rows]
        thresholds = self.thresholds.get(target.model, target.spec, self.settings.common.resolved_clip_model())
        return Hits(sorted(hits, key=lambda h: -h.score)[:want], thresholds.match("text"))

    def by_image(
        self, data: bytes, limit: int = 10, filters: Filters | None = None, offset: int = 0, collapse: bool = False
    ) -> Hits:
        pixels = self._query_pixels(data)
        found = self._embed(lambda c: c.embed_images([pixels]), lambda m: m.embed_pixels(pixels[None]))
        return self._search(found, limit, offset, filters, "image", collapse)

    def by_face(self, data: bytes, limit: int = 10, filters: Filters | None = None, offset: int = 0) -> Hits:
        """The segments whose faces are closest to the largest face in the image (its crop embedded by the face
        model given by path, else the served CLIP; against the faces collection of that model), the best face
        per video."""
        pixels = self._query_pixels(data)
        faces = detect(pixels)
        if not faces:
            raise QueryError("no face found in the image (a frontal face, at least 8% of the picture's short side)")
        face = crop(pixels, faces[0])
        model = face_model(self.settings.common.face_model)  # a face model given by path, else the served CLIP
        embedded_by: ModelRef | None
        if model is not None:
            target = self.router.target()
            vectors, embedded_by = model.embed([face]), model.ref
        else:
            vectors, target = self._embed(lambda c: c.embed_images([face]), lambda m: m.embed_pixels(face[None]))
            embedded_by = target.model if target is not None else None
        if target is None or embedded_by is None or vectors.size == 0:
            return Hits()
        limit = max(1, min(limit, self.settings.max_limit))
        offset = max(0, min(offset, self.settings.max_offset))
        self._check_columns(filters, target.collection)
        expr, want = (filters or Filters()).compile(), offset + limit
        fetch = max(64, 8 * want)
        while True:  # widen until enough videos survive the filters (one video may fill a fetch with its faces)
            found = self.store.nearest_faces(vectors[0].tolist(), fetch, _tenant_scope(filters), embedded_by)
            keys = [(row["video_id"], int(row["segment_index"])) for _, row in found]
            shown = self.store.segments_of(keys, target.model, expr, target.collection)
            hits: dict[str, SegmentHit] = {}
            for (cosine, row), key in zip(found, keys, strict=True):
                if key in shown and key[0] not in hits:
                    why = {"mode": "face", "score": round(cosine, 6), "box": json.loads(row["box"]), "t": row["t"]}
                    hits[key[0]] = SegmentHit(key[0], cosine, {**shown[key], "why": [why]})
            if len(hits) >= want or len(found) < fetch or fetch >= MAX_TOPK:
                break
            fetch = min(MAX_TOPK, 4 * fetch)
        return Hits(sorted(hits.values(), key=lambda h: -h.score)[offset : offset + limit])

    def _query_pixels(self, data: bytes) -> np.ndarray:
        try:
            return fit_pixels(data, self.settings.image_limits())
        except DecodeError as exc:
            raise QueryError(exc.detail) from exc

    def by_video(
        self,
        video: Path | bytes,
        limit: int = 10,
        filters: Filters | None = None,
        offset: int = 0,
        collapse: bool = False,
    ) -> Hits:
        """A video (or an excerpt) as the query: decoded in the killable child, like an upload."""
        with tempfile.TemporaryDirectory(prefix="clipstream-query-") as tmp:
            if isinstance(video, bytes):
                path = Path(tmp) / "query"
                path.write_bytes(video)
            else:
                path = video
            try:
                decoded = self._videos.decode(path.resolve().as_uri())
            except DecodeError as exc:
                raise QueryError(f"{exc.reason}: {exc.detail}") from exc
        images = [jpeg_to_pixels(k.jpeg) for s in decoded.segments for k in s.keyframes]
        found = self._embed(
            lambda c: c.embed_images(images), lambda m: np.concatenate([m.embed_pixels(i[None]) for i in images])
        )
        return self._search(found, limit, offset, filters, "image", collapse)

    def similar(
        self, video_id: str, limit: int = 10, filters: Filters | None = None, offset: int = 0, collapse: bool = False
    ) -> Hits:
        """Videos like this one: its mean vector against every segment, itself excluded."""
        target = self.router.target()
        if target is None:
            raise NotFound(video_id)
        vector = self.store.video_vector(video_id, _tenant_scope(filters), videos_collection(target.model))
        if vector is None:
            raise NotFound(video_id)
        hits = self._search((np.asarray([vector]), target), limit + 1, offset, filters, "image", collapse)
        return Hits([h for h in hits if h.video_id != video_id][:limit], hits.match_threshold)

    def video(self, video_id: str, filters: Filters | None = None) -> tuple[dict[str, object], list[dict[str, object]]]:
        found = self.store.video(video_id, _tenant_scope(filters))
        if found is None:
            raise NotFound(video_id)
        return found

    def latest(
        self, tenant: str, limit: int = 24, after: Cursor | None = None
    ) -> tuple[list[dict[str, Any]], Cursor | None]:
        """The tenant's newest videos, newest first, and the next page's cursor: what the page shows before any
        query. A tenant is required: this lists, it does not search, so nothing else would scope it."""
        limit = max(1, min(limit, self.settings.max_limit))
        return self.store.latest_videos(Filters(tenant=tenant).compile(), limit, after)

    def recommend(
        self,
        positives: Sequence[Example],
        negatives: Sequence[Example] = (),
        limit: int = 10,
        filters: Filters | None = None,
        exclude: Sequence[str] = (),
    ) -> list[SegmentHit]:
        """Videos like the positive examples and unlike the negative ones (see `recommend.py`), best first;
        the positive videos and `exclude` are left out."""
        target = self.router.target()
        if target is None:
            return []
        videos = videos_collection(target.model)
        scope = _tenant_scope(filters)

        def vector(example: Example) -> np.ndarray:
            if example.video_id is not None:
                found = self.store.video_vector(example.video_id, scope, videos)
                if found is None:
                    raise NotFound(example.video_id)
                return np.asarray(found, dtype=np.float32)
            if example.text is not None:
                text = example.text
                if not text.strip():
                    raise QueryError("empty text example")
                return self._embed(lambda c: c.embed_texts([text]), lambda m: m.embed_texts([text]))[0][0]
            assert example.image is not None
            pixels = self._query_pixels(example.image)
            return self._embed(lambda c: c.embed_images([pixels]), lambda m: m.embed_pixels(pixels[None]))[0][0]

        try:
            query = query_vector([vector(e) for e in positives], [vector(e) for e in negatives])
        except ValueError as exc:
            raise QueryError(str(exc)) from exc
        limit = max(1, min(limit, self.settings.max_limit))
        _video_level(filters)
        expr = candidate_filter(filters, positives, exclude).compile()
        return self.store.best_segments([query], limit, expr=expr, collection=videos)

    # --- generation cache -----------------------------------------------------------------------------

    def _request_vectors(self, request: Generation) -> tuple[list[float], np.ndarray | None, ModelRef, str]:
        """The prompt's vector, the references' mean vector (None without), the model they belong to and how
        to load that model. Before anything is indexed the cache follows the model Triton serves (what
        uploads will be embedded with)."""
        if not request.prompt.strip():
            raise QueryError("empty prompt")
        texts = [request.prompt]
        pictures = [self._query_pixels(i) for i in request.references]
        vectors, target = self._embed(lambda c: c.embed_texts(texts), lambda m: m.embed_texts(texts))
        if target is None:
            vectors, model = self.clip.embed_texts(texts)
            images = self.clip.embed_images(pictures)[0] if pictures else None
            spec = ""
        else:
            model, spec = target.model, target.spec
            images = None
            if pictures:
                images = self._embed(
                    lambda c: c.embed_images(pictures),
                    lambda m: np.concatenate([m.embed_pixels(p[None]) for p in pictures]),
                )[0]
        centroid = None if images is None else unit(unit(images).mean(axis=0))[0]
        return [float(x) for x in vectors[0]], centroid, model, spec

    def cache_put(self, tenant: str, entry: CacheEntry, video_id: str) -> str:
        """Store an entry (its video is registered by the caller); returns the entry id."""
        vector, references, model, _ = self._request_vectors(entry.request)
        entry_id = new_entry_id()
        self.store.put_cache_entry(model, entry_row(entry_id, tenant, video_id, entry, vector, references))
        return entry_id

    def cache_lookup(self, tenant: str, request: Generation) -> dict[str, Any]:
        """A hit (video, score, the cached request's provenance) at or above the model's prompt threshold, with
        references as close as a near-duplicate when either side has them, on an indexed video with the same
        parameters; else a miss with the best prompt score seen."""
        vector, references, model, spec = self._request_vectors(request)
        thresholds = self.thresholds.get(model, spec, self.settings.common.resolved_clip_model())
        threshold = thresholds.prompt_match if thresholds.prompt_match is not None else self.settings.cache_threshold
        alike = thresholds.duplicate if thresholds.duplicate is not None else self.settings.cache_reference_threshold
        found = self.store.search_cache(model, vector, lookup_filter(tenant, request))
        candidates, best = screen(found, request, references, threshold, alike)
        served = self.store.served(VIDEOS_ALIAS) is not None
        for c in candidates:
            scope = Filters(tenant=tenant, video_ids=[c.row["video_id"]]).compile()
            if served and self.store.count(scope, VIDEOS_ALIAS):
                return {
                    "hit": True,
                    "entry_id": c.row["pk"],
                    "video_id": c.row["video_id"],
                    "score": round(c.score, 6),
                    "threshold": threshold,
                    "reference_score": None if c.reference_score is None else round(c.reference_score, 6),
                    "reference_threshold": None if c.reference_score is None else alike,
                    "provenance": c.provenance,
                    "seconds_saved": float(c.row["duration_s"]),
                }
        return {"hit": False, "best_score": None if best is None else round(best, 6), "threshold": threshold}

    def cache_delete(self, tenant: str, entry_id: str) -> None:
        if not self.store.delete_cache_entry(entry_id, tenant):
            raise NotFound(entry_id)

    def duplicates(self, video_id: str, filters: Filters | None = None) -> dict[str, Any]:
        """The near-duplicate stage's verdicts on this video, from its side, and its duplicate group."""
        self.video(video_id, filters)  # NotFound unless the caller's tenant owns it
        tenant = filters.tenant if filters else None
        rows = self.store.duplicates_of([video_id], tenant)
        verdicts = verdicts_of(video_id, rows)
        group, frontier = {video_id}, {video_id}
        for _ in range(3):  # three "duplicate" hops out: re-uploads of re-uploads
            joined = duplicate_neighbours(rows) - group
            group |= joined
            frontier = joined
            if not frontier or len(group) > 200:
                break
            rows = self.store.duplicates_of(sorted(frontier), tenant)
        return {"video_id": video_id, "duplicates": verdicts, "group": sorted(group)}

    # --- quality control -------------------------------------------------------------------------------

    def qc(
        self,
        tenant: str,
        video_id: str,
        prompt: str | None = None,
        images: Sequence[bytes] = (),
        reference_video_ids: Sequence[str] = (),
    ) -> dict[str, Any]:
        """The QC stage's checks on one indexed video, against the prompt and references of the request, else
        those in the video's metadata. "nothing_to_check" (not an error) when neither has any."""
        quality = self.settings.quality
        target = self.router.target()
        if target is None:
            raise NotFound(video_id)
        subject = load_subject(self.store, target.collection, video_id, tenant, quality.max_segments)
        if subject is None:
            raise NotFound(video_id)
        given = prompt is not None or bool(images) or bool(reference_video_ids)
        if not given:
            prompt = subject.prompt
        try:
            check_reference_count(len(images) + len(reference_video_ids), quality.max_references)
            text = None if prompt is None else check_prompt(prompt, quality.max_prompt_chars)
            pictures = [self._query_pixels(i) for i in images]
            if not given and subject.references:
                check_reference_count(len(subject.references), quality.max_references)
                sources, limits = self.settings.media.source_policy(), self.settings.image_limits()
                pictures = [read_reference(u, sources, quality.max_reference_bytes, limits) for u in subject.references]
        except (QualityError, DecodeError) as exc:
            raise QueryError(exc.detail) from exc
        vectors = [
            self._known_vector(v, tenant, videos_collection(target.model)) for v in dict.fromkeys(reference_video_ids)
        ]
        if pictures:
            found, _ = self._embed(
                lambda c: c.embed_images(pictures),
                lambda m: np.concatenate([m.embed_pixels(p[None]) for p in pictures]),
            )
            vectors += list(found)
        prompt_vector = None
        if text is not None:
            prompt_vector = self._embed(lambda c: c.embed_texts([text]), lambda m: m.embed_texts([text]))[0]
        thresholds = self.thresholds.get(target.model, target.spec, self.settings.common.resolved_clip_model())
        config = quality.config(thresholds, self.settings.media.max_segment_s, subject.cuts_allowed)
        references = np.asarray(vectors, dtype=np.float32) if vectors else None

        def embed(images: list[np.ndarray]) -> np.ndarray:
            found, _ = self._embed(
                lambda c: c.embed_images(images), lambda m: np.concatenate([m.embed_pixels(p[None]) for p in images])
            )
            return found

        faces, reference_faces = character_inputs(
            pictures,
            embed,
            self.store,
            video_id,
            tenant,
            target.model,
            self.settings.common.face_model,
            subject.segments,
        )
        result = run_checks(subject.segments, config, prompt_vector, references, faces, reference_faces)
        body: dict[str, Any] = {
            "video_id": video_id,
            "verdict": result.verdict,
            "checks": result.checks,
            "flags": [f.model_dump() for f in result.flags],
            "segments": [s.model_dump(exclude_none=True) for s in result.segments],
            "thresholds": {
                "alignment": config.alignment_threshold,
                "jump": config.jump_threshold,
                "style_z": config.style_z,
            },
            "source": "request" if given else "metadata",
        }
        if result.verdict == "nothing_to_check":
            body["detail"] = (
                "nothing to check: no prompt or references in the request or in the video's metadata "
                f"({QC_PROMPT_KEY!r}, {QC_REFERENCES_KEY!r})"
            )
        return body

    def qc_outliers(self, filters: Filters, limit: int = 20, z_max: float | None = None) -> dict[str, Any]:
        """The cohort the filters select (tenant, creator, a campaign in the free metadata...) and the videos
        far from its centroid (robust z-score of the distance to it), farthest first."""
        _video_level(filters)
        quality = self.settings.quality
        target = self.router.target()
        threshold = quality.outlier_z if z_max is None else z_max
        if target is None:
            raise QueryError("nothing is indexed yet")
        videos = videos_collection(target.model)
        expr = filters.compile()
        size = self.store.count(expr, videos)
        if size > quality.max_cohort:
            raise QueryError(f"the cohort has {size} videos, at most {quality.max_cohort}: narrow the filters")
        if size < quality.min_cohort:
            raise QueryError(f"the cohort has {size} videos: outliers need at least {quality.min_cohort}")
        rows = self.store.rows(expr, ["video_id", "title", "creator", "uri", METADATA, "vector"], videos)
        found, median = cohort_outliers([r["vector"] for r in rows], threshold, quality.outlier_min_mad)
        listed = []
        for o in found[:limit]:
            row = rows[o.position]
            listed.append(
                {k: row.get(k) for k in ("video_id", "title", "creator", "uri", METADATA)}
                | {"distance": round(o.distance, 6), "z": round(o.z, 3)}
            )
        return {
            "cohort_size": len(rows),
            "median_distance": round(median, 6),
            "z_threshold": threshold,
            "outliers": listed,
        }

    def _known_vector(self, video_id: str, tenant: str, collection: str) -> list[float]:
        found = self.store.video_vector(video_id, Filters(tenant=tenant).compile(), collection)
        if found is None:
            raise NotFound(video_id)
        return found

    # --- plumbing ---------------------------------------------------------------------------------------

    def _embed(
        self,
        remote: Callable[[ClipClient], tuple[np.ndarray, ModelRef]],
        local: Callable[[LoadedClip], np.ndarray],
    ) -> tuple[np.ndarray, Target | None]:
        """Query vectors and the served target they belong to (resolved once: the alias may move)."""
        vectors, _, target = self.router.embed(lambda: remote(self.clip), local)
        return vectors, target

    def _search(
        self,
        found: tuple[np.ndarray, Target | None],
        limit: int,
        offset: int,
        filters: Filters | None,
        kind: QueryKind,
        collapse: bool = False,
    ) -> Hits:
        vectors, target = found
        if target is None or vectors.size == 0:
            return Hits()
        limit = max(1, min(limit, self.settings.max_limit + self.settings.max_offset))  # fusion reads a page deep
        offset = max(0, min(offset, self.settings.max_offset))
        self._check_columns(filters, target.collection)
        expr = (filters or Filters()).compile()
        if collapse:  # over-fetch, keep each duplicate group's best, then page
            fetched = self.store.best_segments(
                vectors.tolist(), min(4 * (offset + limit), 4000), expr=expr, collection=target.collection
            )
            rows = self.store.duplicates_of([h.video_id for h in fetched], filters.tenant if filters else None)
            hits = [fetched[i] for i in collapsed([h.video_id for h in fetched], rows)][offset : offset + limit]
        else:
            hits = self.store.best_segments(
                vectors.tolist(), limit, offset=offset, expr=expr, collection=target.collection
            )
        thresholds = self.thresholds.get(target.model, target.spec, self.settings.common.resolved_clip_model())
        return Hits(hits, thresholds.match(kind))


def _video_level(filters: Filters | None) -> None:
    if filters is not None and filters.min_faces is not None:
        raise QueryError("min_faces filters segments: it does not apply to whole videos")


def _why(hit: SegmentHit, reason: dict[str, Any]) -> SegmentHit:
    return SegmentHit(hit.video_id, hit.score, {**hit.fields, "why": [reason]})


def _tenant_scope(filters: Filters | None) -> str:
    return Filters(tenant=filters.tenant).compile() if filters and filters.tenant else ""


def hits_to_json(hits: Hits) -> dict[str, Any]:
    """The results and the verdict: `good_match` false when even the best hit is below the model's
    "no good match" threshold (null when no threshold is known for the model)."""
    return {
        "results": [
            r | {"good_match": _good(h, hits.match_threshold)} for h, r in zip(hits, _results(hits), strict=True)
        ],
        "match_threshold": hits.match_threshold,
        "good_match": hits.good_match,
    }


def _words_matched(hit: SegmentHit) -> bool:
    """The result shows the query's words on screen: a good match whatever the model's threshold says."""
    return any(w.get("mode") == "text" and w.get("words_found", 0) >= NAMED for w in hit.fields.get("why") or [])


def _good(hit: SegmentHit, threshold: float | None) -> bool | None:
    """A result naming the query's words on screen is a good match; otherwise its visual score against the
    model's threshold (a text hit's score is another model's cosine: no verdict from it)."""
    if _words_matched(hit):
        return True
    reasons = hit.fields.get("why") or []
    visual = next((float(w["score"]) for w in reasons if w.get("mode") == "visual"), None)
    if visual is not None or not reasons:
        return _at_least(visual if visual is not None else hit.score, threshold)
    return None if threshold is None else False


def _at_least(score: float, threshold: float | None) -> bool | None:
    return None if threshold is None else score >= threshold


def video_results(hits: Sequence[SegmentHit]) -> list[dict[str, object]]:
    """Video-level hits (recommendations): no segment, the video's middle thumbnail."""
    return [
        {
            "video_id": h.video_id,
            "score": round(h.score, 6),
            **{k: h.fields.get(k) for k in ("title", "creator", "uri", "uploaded_at", "duration_s")},
            "tags": [t for i in range(8) if (t := h.fields.get(f"tag{i}"))],
            "metadata": h.fields.get(METADATA) or {},
            "thumbnail": f"data:image/jpeg;base64,{h.fields['thumb']}" if h.fields.get("thumb") else None,
            "why": h.fields.get("why") or [{"mode": "visual", "score": round(h.score, 6)}],
        }
        for h in hits
    ]


def _results(hits: Sequence[SegmentHit]) -> list[dict[str, object]]:
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
            "metadata": h.fields.get(METADATA) or {},
            "thumbnail": f"data:image/jpeg;base64,{h.fields['thumb']}" if h.fields.get("thumb") else None,
            "why": h.fields.get("why") or [{"mode": "visual", "score": round(h.score, 6)}],
        }
        for h in hits
    ]
