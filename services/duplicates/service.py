"""The near-duplicate stage: every `videos.indexed` is compared with the tenant's catalogue of the same
model, and the verdicts are published on `videos.duplicates` and kept in the duplicates collection.

For each of the video's informative segments the catalogue's nearest segments (same tenant, same model,
other videos) are searched, and for its frames' fingerprints the nearest in the model-independent fingerprint
index: the nearest videos by either are the candidates. Their segment pairs that are evidence
(`evidence.py`: the model's cosine over its duplicate threshold, the frames' perceptual hashes, fused) are
judged for temporal evidence (`match.py`). The pairs are upserted (keyed by model, video and other video,
so a replay rewrites them) before the transaction that publishes the event and commits the offset.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from services.clip.thresholds import ThresholdBook
from services.common.errors import PermanentError
from services.common.filters import Filters, string_literal
from services.common.fingerprints import KeyframeFingerprint, hash_vector, parse_segment
from services.common.kafka.processor import Outgoing, ProcessorConfig, Received, Result, TransactionalProcessor
from services.common.messages import DuplicateMatch, Topics, VideoDuplicates, VideoIndexed
from services.common.vectors import SegmentStore
from services.common.vectors.layout import FINGERPRINTS
from services.duplicates.blank import informative
from services.duplicates.evidence import evidence as pair_evidence
from services.duplicates.match import Segment, Verdict, judge, usable
from services.duplicates.settings import DuplicatesSettings

SEGMENT_FIELDS = ["segment_index", "start_s", "end_s", "thumb", FINGERPRINTS]


class DuplicateFinder:
    def __init__(self, store: SegmentStore, settings: DuplicatesSettings) -> None:
        self.store = store
        self.settings = settings
        self.thresholds = ThresholdBook(settings.common.thresholds_path)

    def handle(self, batch: list[Received[VideoIndexed]]) -> list[Result]:
        results: list[Result] = []
        for received in batch:
            found = self.check(received.value)
            if found is not None:
                results.append(
                    Outgoing(Topics.DUPLICATES, found, found.video_id, received, unique=received.value.event_id)
                )
        return results

    def check(self, event: VideoIndexed) -> VideoDuplicates | None:
        """The verdicts for one indexed upload; None when its rows are gone (deleted since)."""
        if not self.store.exists(event.collection):
            raise PermanentError(f"no collection {event.collection}", reason="unknown_collection")
        model, spec = self.store.model_of(event.collection)
        threshold = self.settings.threshold_for(model, spec, book=self.thresholds)
        weigh, config = self.settings.evidence_config(threshold), self.settings.match_config()
        scope = Filters(tenant=event.tenant or None)
        mine = self.store.rows(
            scope.model_copy(update={"video_ids": [event.video_id]}).compile(),
            [*SEGMENT_FIELDS, "vector"],
            collection=event.collection,
        )
        if not mine:
            return None
        mine = sorted(mine, key=lambda r: r["segment_index"])[: self.settings.max_segments]
        this = [self._segment(r) for r in mine]
        evidence = {s.index for s in usable(this, config)}
        queries = [(s, r) for s, r in zip(this, mine, strict=True) if s.index in evidence]
        cosines: dict[str, dict[tuple[int, int], float]] = defaultdict(dict)
        others = f"{scope.compile() + ' and ' if scope.tenant else ''}video_id != {string_literal(event.video_id)}"
        if queries and weigh.mode != "fingerprints":  # the hashes alone: the model's vectors are not searched
            nearest = self.store.nearest(
                [r["vector"] for _, r in queries], self.settings.neighbours, others, event.collection
            )
            for (segment, _), hits in zip(queries, nearest, strict=True):
                for video_id, index, score in hits:
                    cosines[video_id][(segment.index, index)] = score
        matches = []
        this_prints = {int(r["segment_index"]): _prints(r) for _, r in queries}
        candidates = self._candidates(cosines, threshold, weigh.mode == "clip")
        if weigh.mode != "clip":
            candidates = sorted(set(candidates) | set(self._alike(this_prints, others, weigh.match_bits)))
        if candidates:
            segments: dict[str, list[Segment]] = defaultdict(list)
            prints: dict[str, dict[int, list[KeyframeFingerprint]]] = defaultdict(dict)
            listed = scope.model_copy(update={"video_ids": candidates}).compile()
            for row in self.store.rows(listed, ["video_id", *SEGMENT_FIELDS], collection=event.collection):
                segments[row["video_id"]].append(self._segment(row))
                prints[row["video_id"]][int(row["segment_index"])] = _prints(row)
            for video_id in candidates:
                pairs = pair_evidence(cosines[video_id], this_prints, prints[video_id], weigh)
                verdict = judge(this, segments.get(video_id, []), pairs, config) if pairs else None
                if verdict is not None:
                    matches.append(_match(video_id, verdict))
        matches.sort(key=lambda m: -m.score)
        result = VideoDuplicates(
            event_id=event.event_id,
            video_id=event.video_id,
            tenant=event.tenant,
            collection=event.collection,
            model_version=event.model_version,
            segment_threshold=threshold,
            matches=matches,
        )
        self.store.put_duplicates(result)
        return result

    def _alike(self, prints: dict[int, list[KeyframeFingerprint]], others: str, match_bits: int) -> list[str]:
        """The videos with a segment whose indexed frame hashes like one of these frames (any of its four
        hashes, so mirrored and cropped copies too), most such hits first: found whatever the model knows."""
        frames = [f for _, found in sorted(prints.items()) for f in found]
        if len(frames) > self.settings.max_print_queries:  # evenly over the video
            step = len(frames) / self.settings.max_print_queries
            frames = [frames[int(i * step)] for i in range(self.settings.max_print_queries)]
        vectors = [hash_vector(h) for f in frames for h in f.hashes]
        hits: dict[str, int] = defaultdict(int)
        for found in self.store.nearest_fingerprints(vectors, self.settings.print_neighbours, others):
            for video_id, _, bits in found:
                if bits <= match_bits:
                    hits[video_id] += 1
        return sorted(hits, key=lambda v: (-hits[v], v))[: self.settings.max_candidates]

    def _candidates(self, cosines: dict[str, dict[tuple[int, int], float]], threshold: float, clip: bool) -> list[str]:
        """The videos worth judging: by the model alone, those with a pair over its threshold; otherwise the
        `max_candidates` nearest by their best cosine, whatever it is (their frames' hashes decide)."""
        best = {video_id: max(found.values()) for video_id, found in cosines.items()}
        if clip:
            return sorted(v for v, score in best.items() if score >= threshold)
        return sorted(sorted(best, key=lambda v: (-best[v], v))[: self.settings.max_candidates])

    def _segment(self, row: dict[str, Any]) -> Segment:
        return Segment(
            int(row["segment_index"]),
            float(row["start_s"]),
            float(row["end_s"]),
            informative(row.get("thumb") or "", self.settings.min_detail),
        )


def _prints(row: dict[str, Any]) -> list[KeyframeFingerprint]:
    """A segment row's frame fingerprints (none in collections written before them)."""
    return [found for _, found in parse_segment(row.get(FINGERPRINTS) or "")]


def _match(video_id: str, verdict: Verdict) -> DuplicateMatch:
    return DuplicateMatch(
        other_video_id=video_id,
        kind=verdict.kind,
        score=round(verdict.score, 6),
        start_s=verdict.this_range[0],
        end_s=verdict.this_range[1],
        other_start_s=verdict.other_range[0],
        other_end_s=verdict.other_range[1],
        segments=verdict.segments,
        coverage=round(verdict.this_coverage, 4),
        other_coverage=round(verdict.other_coverage, 4),
    )


def build(settings: DuplicatesSettings) -> TransactionalProcessor[VideoIndexed]:
    store = SegmentStore(settings.common)
    finder = DuplicateFinder(store, settings)
    config = ProcessorConfig(
        service="duplicates",
        group_id=settings.group_id,
        input_topic=Topics.INDEXED,
        max_batch=settings.max_batch_messages,
        max_wait_s=settings.max_wait_s,
        handle_timeout_s=300.0,
        **settings.common.processor_fields(),
    )
    return TransactionalProcessor.for_topics(settings.common, config, finder.handle, store.ready)
