"""Best segment per video: an exact path for selective filters, an HNSW path that widens its over-fetch.

Grouping happens here, not in Milvus: Milvus Lite's group-by drops groups when one video has many
near-identical segments, and Milvus 2.3 ignores group-by altogether.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from pymilvus import MilvusClient

from services.common.vectors.layout import MAX_TOPK, OUTPUT_FIELDS, IndexConfig

Read = Callable[..., list[dict[str, Any]]]  # (collection, expr, fields, limit=None) -> rows
Recovering = Callable[[Callable[[], Any]], Any]  # runs a Milvus call, recovering from a restart
Readable = Callable[[str, Sequence[str]], list[str]]  # the fields of these a collection has


@dataclass(frozen=True)
class SegmentHit:
    video_id: str
    score: float
    fields: Mapping[str, Any]

    @property
    def start_s(self) -> float:
        return float(self.fields["start_s"])

    @property
    def end_s(self) -> float:
        return float(self.fields["end_s"])


def merge(per_query: Sequence[Mapping[str, SegmentHit]]) -> list[SegmentHit]:
    """Each video's best hit over all query vectors, best first."""
    best: dict[str, SegmentHit] = {}
    for query in per_query:
        for vid, hit in query.items():
            if vid not in best or hit.score > best[vid].score:
                best[vid] = hit
    return sorted(best.values(), key=lambda h: -h.score)


class Searcher:
    def __init__(
        self, client: MilvusClient, index: IndexConfig, read: Read, recovering: Recovering, readable: Readable
    ) -> None:
        self.client = client
        self._readable = readable
        self.index = index
        self._read = read
        self._recovering = recovering

    def best_segments(
        self, vectors: Sequence[Sequence[float]], limit: int, offset: int, expr: str, collection: str
    ) -> list[SegmentHit]:
        """Best segment of each of the top videos for one or more query vectors.

        The over-fetched segment list widens until enough distinct videos are found. With several query
        vectors (a video query's densely sampled frames), a video scores its best (query frame, segment)
        pair: an excerpt matches the video that contains any of its moments.
        """
        want = offset + limit
        if expr and self._admits_few(expr, collection):
            return self._exact(vectors, expr, collection, want)[offset:want]
        fetch = min(max(want * 8, 64), MAX_TOPK)
        while True:
            per_query, returned = self._search(vectors, fetch, expr, collection)
            videos = set().union(*(q.keys() for q in per_query))
            exhausted = all(n < fetch for n in returned) or fetch >= MAX_TOPK
            if len(videos) >= want or exhausted:
                break
            fetch = min(fetch * 4, MAX_TOPK)
        return merge(per_query)[offset:want]

    def nearest(
        self, vectors: Sequence[Sequence[float]], limit: int, expr: str, collection: str, consistency: str = ""
    ) -> list[list[tuple[str, int, float]]]:
        results = self._recovering(
            lambda: self.client.search(
                collection,
                data=[list(v) for v in vectors],
                limit=min(limit, MAX_TOPK),
                filter=expr,
                output_fields=["video_id", "segment_index"],
                search_params={"metric_type": "COSINE", "params": self.index.search_params(limit)},
                consistency_level=consistency or self.index.consistency,
            )
        )
        return [
            [(h["entity"]["video_id"], int(h["entity"]["segment_index"]), float(h["distance"])) for h in hits]
            for hits in results
        ]

    def _admits_few(self, expr: str, collection: str) -> bool:
        """Whether the filter matches at most `exact_max_rows` segments (a bounded query, not a count)."""
        limit = self.index.exact_max_rows
        if limit <= 0:
            return False
        return len(self._read(collection, expr, ["pk"], limit=limit + 1)) <= limit

    def _exact(self, vectors: Sequence[Sequence[float]], expr: str, collection: str, want: int) -> list[SegmentHit]:
        """Brute force over the few rows a selective filter admits: HNSW with such a filter loses recall
        (Milvus Lite finds ~1 in 4 of the true top 10 when 0.1% of rows match)."""
        rows = self._read(collection, expr, ["pk", "video_id", "vector"])
        if not rows:
            return []
        matrix = np.asarray([r["vector"] for r in rows], dtype=np.float32)
        matrix /= np.maximum(np.linalg.norm(matrix, axis=1, keepdims=True), 1e-12)
        scores = (np.asarray(vectors, dtype=np.float32) @ matrix.T).max(axis=0)  # best over query vectors
        best: dict[str, tuple[float, str]] = {}
        for i in np.argsort(-scores):
            best.setdefault(rows[i]["video_id"], (float(scores[i]), rows[i]["pk"]))
            if len(best) >= want:
                break
        pks = [pk for _, pk in best.values()]
        fields = {r["pk"]: r for r in self._read(collection, f"pk in {json.dumps(pks)}", OUTPUT_FIELDS)}
        return [SegmentHit(vid, score, fields[pk]) for vid, (score, pk) in best.items() if pk in fields]

    def _search(
        self, vectors: Sequence[Sequence[float]], fetch: int, expr: str, collection: str
    ) -> tuple[list[dict[str, SegmentHit]], list[int]]:
        fields = self._readable(collection, OUTPUT_FIELDS)
        results = self._recovering(
            lambda: self.client.search(
                collection,
                data=[list(v) for v in vectors],
                limit=fetch,
                filter=expr,
                output_fields=fields,
                search_params={"metric_type": "COSINE", "params": self.index.search_params(fetch)},
                consistency_level=self.index.consistency,
            )
        )
        per_query: list[dict[str, SegmentHit]] = []
        for hits in results:
            best: dict[str, SegmentHit] = {}
            for hit in hits:  # sorted by score: the first hit of a video is its best segment
                entity = hit["entity"]
                best.setdefault(entity["video_id"], SegmentHit(entity["video_id"], float(hit["distance"]), entity))
            per_query.append(best)
        return per_query, [len(hits) for hits in results]
