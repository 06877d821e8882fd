"""What the vector store must do on every Milvus backend: run against Milvus Lite by the integration
tests, and against the `milvus==2.3.5` standalone server inside a loopback-only network namespace.

`python -m tests.store_contract standalone` starts that server (it binds every interface, which is why
it must run where only loopback exists), runs the contract, and stops the server's process group.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import numpy as np

from services.common.filters import Filters
from services.common.fingerprints import KeyframeFingerprint, hash_vector, segment_text
from services.common.messages import FaceVector, ModelRef, ScreenText, SegmentEmbedding, SegmentText, VideoInfo
from services.common.settings import CommonSettings
from services.common.vectors import VIDEO_FIELDS, VIDEOS_ALIAS, SegmentStore, segments_collection, videos_collection
from services.common.vectors.layout import create_collection
from services.stack.milvus import private_milvus
from tests.media import random_fingerprint

DIM = 32


def _embedding(
    model: ModelRef, video: str, index: int, count: int, vector: np.ndarray, **info: object
) -> SegmentEmbedding:
    fields = {"uri": f"file:///{video}.mp4", "uploaded_at": datetime(2026, 1, 1, tzinfo=UTC), **info}
    return SegmentEmbedding(
        event_id="e",
        video_id=video,
        segment_index=index,
        segment_count=count,
        start_s=index * 2.0,
        end_s=index * 2.0 + 2.0,
        keyframe_times=[index * 2.0 + 1.0],
        vector=(vector / np.linalg.norm(vector)).tolist(),
        model=model,
        video=VideoInfo.model_validate(fields),
        thumbnail=b"\xff\xd8",
    )


def check(uri: str) -> None:
    """Raises AssertionError on the first contract violation."""
    store = SegmentStore(CommonSettings(milvus_uri=uri, milvus_tenant_buckets=8))
    model = ModelRef(name="contract", version=f"v{int(time.time() * 1000)}", dim=DIM)
    rng = np.random.default_rng(0)
    base = rng.normal(size=DIM)
    # "dup" has 40 near-identical segments that all beat the others: a naive top-k fills with it alone
    writes = [
        _embedding(model, "dup", i, 40, base + 0.01 * rng.normal(size=DIM), tenant="a", creator="x") for i in range(40)
    ]
    for v in range(12):
        tags = ["beach"] if v % 3 == 0 else []
        writes += [
            _embedding(
                model,
                f"other{v}",
                i,
                3,
                base + (0.5 + v / 10) * rng.normal(size=DIM),
                tenant="a" if v < 8 else "b",
                creator=f"c{v}",
                height=1080 if v % 2 else 480,
                tags=tags,
                metadata={"lang": "en" if v < 4 else "de", "n": v, "odd": bool(v % 2)},
            )
            for i in range(3)
        ]
    for start in range(0, len(writes), 25):
        store.write_segments(model, writes[start : start + 25])
    segments = segments_collection(model)
    assert store.count(collection=segments) == 40 + 36
    # tenants hash into partitions (2.3: no partition key, the one default partition). The number asked for
    # (`milvus_tenant_buckets`) is what 2.4+ servers create; Milvus Lite keeps its fixed 16 whatever it is asked
    partitions = store.client.list_partitions(segments)
    assert (len(partitions) == 1) if store._server_before_2_4() else (len(partitions) > 8), partitions
    store.write_segments(model, writes[:5])  # a replay rewrites the same rows
    assert store.count(collection=segments) == 76

    hits = store.best_segments([base.tolist()], limit=10, collection=segments)
    assert len(hits) == 10 and len({h.video_id for h in hits}) == 10, "best segment per video lost groups"
    assert hits[0].video_id == "dup"
    for exact_max_rows in (0, 256):  # filtered search through HNSW, then the exact path for small matches
        store.index = dataclasses.replace(store.index, exact_max_rows=exact_max_rows)
        scoped = store.best_segments([base.tolist()], 20, expr=Filters(tenant="b").compile(), collection=segments)
        assert {h.video_id for h in scoped} == {"other8", "other9", "other10", "other11"}, exact_max_rows
        assert all(h.fields["tenant"] == "b" and "start_s" in h.fields for h in scoped)
        tagged = store.best_segments(
            [base.tolist()], 20, expr=Filters(tags=["beach"], min_height=1).compile(), collection=segments
        )
        assert {h.video_id for h in tagged} == {"other0", "other3", "other6", "other9"}, exact_max_rows
        assert [h.score for h in tagged] == sorted((h.score for h in tagged), reverse=True)
    # free metadata: one JSON column, each key filtered with its value's type
    cases: list[tuple[dict[str, Any], set[str]]] = [
        ({"lang": "de", "odd": True}, {"other5", "other7", "other9", "other11"}),
        ({"n": 3}, {"other3"}),
        ({"n": "3"}, set()),
        ({"missing": "x"}, set()),
    ]
    for metadata, expected in cases:
        matched = store.best_segments(
            [base.tolist()], 20, expr=Filters(metadata=metadata).compile(), collection=segments
        )
        assert {h.video_id for h in matched} == expected, metadata
    assert all(h.fields["metadata"]["n"] == int(h.video_id[5:]) for h in hits if h.video_id != "dup")
    page1 = store.best_segments([base.tolist()], 5, collection=segments)
    page2 = store.best_segments([base.tolist()], 5, offset=5, collection=segments)
    assert [h.video_id for h in page1 + page2] == [h.video_id for h in hits]

    # a re-upload with fewer segments leaves no stale rows; the video row follows
    store.write_segments(model, [_embedding(model, "dup", i, 2, -base, tenant="a") for i in range(2)])
    assert store.count(Filters(video_ids=["dup"]).compile(), collection=segments) == 2
    # a backfill of an older upload arriving late (the version before a re-upload) never replaces the newer one
    late = store.write_segments(
        model,
        [
            _embedding(model, "dup", i, 3, base, tenant="a", uploaded_at=datetime(2025, 12, 31, tzinfo=UTC)).model_copy(
                update={"event_id": "backfill-old"}
            )
            for i in range(3)
        ],
    )
    assert late.removed == {"dup"} and not late.completed
    # nor, at the upload's own second, does a backfill's write replace an upload's (the switch's race)
    backfill = [
        _embedding(model, "dup", i, 3, base, tenant="a").model_copy(update={"event_id": "backfill-x"}) for i in range(3)
    ]
    assert store.write_segments(model, backfill).removed == {"dup"}
    assert store.count(Filters(video_ids=["dup"]).compile(), collection=segments) == 2
    # after a switch a backfill and a re-upload of one video meet in one indexer batch, in either order: the
    # re-upload stands (its 2 segments, its vector), the backfill writes nothing (own collections: counts below)
    meet = ModelRef(name="contract", version=f"{model.version}m", dim=DIM)
    same_second = datetime(2026, 1, 1, tzinfo=UTC)  # the upload's own: at one second an upload's write wins
    for name, upload_first, at in (
        ("meet-a", True, datetime(2025, 12, 31, tzinfo=UTC)),
        ("meet-b", False, datetime(2025, 12, 31, tzinfo=UTC)),
        ("meet-c", False, same_second),
    ):
        late_backfill = [
            _embedding(meet, name, i, 3, base, tenant="a", uploaded_at=at).model_copy(
                update={"event_id": "backfill-meet"}
            )
            for i in range(3)
        ]
        reupload = [_embedding(meet, name, i, 2, -base, tenant="a") for i in range(2)]
        met = store.write_segments(meet, reupload + late_backfill if upload_first else late_backfill + reupload)
        assert [e.event_id for e in met.completed] == ["e"] and not met.removed, name
        fields = ["segment_index", "event_id", "vector"]
        kept = store.rows(Filters(video_ids=[name]).compile(), fields, segments_collection(meet))
        assert sorted(r["segment_index"] for r in kept) == [0, 1] and {r["event_id"] for r in kept} == {"e"}, name
        assert all(np.dot(r["vector"], base) < 0 for r in kept), name

    store.switch_aliases(model)
    found = store.video("dup")
    assert found is not None and found[0]["segment_count"] == 2 and len(found[1]) == 2
    video_vector = store.video_vector("dup")  # the mean of the current segments only
    assert video_vector is not None and np.allclose(video_vector, -base / np.linalg.norm(base), atol=1e-5)
    assert store.video("dup", Filters(tenant="b").compile()) is None
    assert store.count(collection=VIDEOS_ALIAS) == 13
    assert store.model_of(segments)[0] == model

    _check_latest(store, model, base)
    _check_fingerprints(store, model)
    _check_text(store)
    _check_faces(store, model)

    # a collection an earlier release created, without the metadata column, keeps taking writes and reads
    older = ModelRef(name="contract", version=model.version + "old", dim=DIM)
    for name, video_level in ((segments_collection(older), False), (videos_collection(older), True)):
        create_collection(
            store.client, name, DIM, video_level, store.index, store._server_before_2_4(), free_metadata=False
        )
    store.write_segments(older, [_embedding(older, "old", 0, 1, base, tenant="a", metadata={"lang": "en"})])
    old_hits = store.best_segments([base.tolist()], 5, collection=segments_collection(older))
    assert [h.video_id for h in old_hits] == ["old"] and "metadata" not in old_hits[0].fields
    assert store.rows(Filters(video_ids=["old"]).compile(), VIDEO_FIELDS, collection=videos_collection(older))


def _check_fingerprints(store: SegmentStore, model: ModelRef) -> None:
    """The model-independent fingerprint index: a segment's indexed frame is found by a copy's hash a few bits
    off, only in its tenant, and is gone after a re-upload with fewer segments and after a delete."""
    rng = np.random.default_rng(9)
    prints = [random_fingerprint(rng) for _ in range(5)]

    def print_embedding(
        video: str, index: int, count: int, found: KeyframeFingerprint, tenant: str
    ) -> SegmentEmbedding:
        e = _embedding(model, video, index, count, rng.normal(size=DIM), tenant=tenant, creator="p")
        return e.model_copy(update={"fingerprints": segment_text([(index * 2.0 + 1.0, found)])})

    store.write_segments(model, [print_embedding("print-a", i, 3, prints[i], "pa") for i in range(3)])
    store.write_segments(model, [print_embedding("print-b", 0, 1, prints[1], "pb")])
    tenant_a = Filters(tenant="pa").compile()
    copy = hash_vector(prints[1].hashes[0] ^ 0b101)  # two bits off segment 1's plain hash
    hits = store.nearest_fingerprints([copy], 4, tenant_a)[0]
    assert hits[0] == ("print-a", 1, 2) and {v for v, _, _ in hits} == {"print-a"}, hits
    centre = store.nearest_fingerprints([hash_vector(prints[2].hashes[2])], 1, tenant_a)[0]
    assert centre == [("print-a", 2, 0)], centre  # the centre hash is indexed too (a cropped copy's way in)
    store.write_segments(model, [print_embedding("print-a", 0, 1, prints[3], "pa")])  # re-uploaded: one segment
    hits = store.nearest_fingerprints([copy], 8, tenant_a)[0]
    assert {i for _, i, _ in hits} == {0} and min(b for _, _, b in hits) > 8, hits
    store.delete_video("print-a", "pa", int(time.time() * 1000))
    assert store.nearest_fingerprints([copy], 8, tenant_a) == [[]]
    assert store.nearest_fingerprints([copy], 8, Filters(tenant="pb").compile())[0][0] == ("print-b", 0, 2)


def _check_faces(store: SegmentStore, model: ModelRef) -> None:
    """Faces of a segment: counted on its row (`min_faces` filters on it), searchable in the model's faces
    collection in their tenant only, replaced by a re-upload, gone with the video."""
    rng = np.random.default_rng(13)
    face = rng.normal(size=DIM)
    face = face / np.linalg.norm(face)

    def with_faces(video: str, index: int, count: int, n: int, tenant: str) -> SegmentEmbedding:
        e = _embedding(model, video, index, count, rng.normal(size=DIM), tenant=tenant, creator="f")
        vectors = [face if k == 0 else rng.normal(size=DIM) for k in range(n)]
        faces = [
            FaceVector(
                box=(0.1, 0.1, 0.3, 0.3), score=5.0, t=index * 2.0 + 1.0, vector=(v / np.linalg.norm(v)).tolist()
            )
            for v in vectors
        ]
        return e.model_copy(update={"faces": faces})

    store.write_segments(model, [with_faces("face-a", 0, 2, 0, "fa"), with_faces("face-a", 1, 2, 2, "fa")])
    store.write_segments(model, [with_faces("face-b", 0, 1, 1, "fb")])
    segments = segments_collection(model)
    counted = store.rows(Filters(tenant="fa", min_faces=1).compile(), ["segment_index"], collection=segments)
    assert [r["segment_index"] for r in counted] == [1], counted
    hits = store.nearest_faces(face.tolist(), 5, Filters(tenant="fa").compile(), model)
    assert hits[0][1]["video_id"] == "face-a" and hits[0][1]["segment_index"] == 1 and hits[0][0] > 0.99, hits
    assert {r["video_id"] for _, r in hits} == {"face-a"} and len(hits) == 2
    store.write_segments(model, [with_faces("face-a", 0, 1, 1, "fa")])  # re-uploaded: one segment, one face
    hits = store.nearest_faces(face.tolist(), 5, Filters(tenant="fa").compile(), model)
    assert [(r["segment_index"], round(c, 3)) for c, r in hits] == [(0, 1.0)], hits
    by_path = ModelRef(name="face-contract", version=model.version, dim=4)  # a face model given by path
    other = with_faces("face-a", 0, 1, 0, "fa").model_copy(
        update={"faces": [FaceVector(box=(0.1, 0.1, 0.3, 0.3), score=5.0, t=1.0, vector=[0.0, 0.0, 0.6, 0.8])]}
    )
    store.write_segments(model, [other.model_copy(update={"face_model": by_path})])
    assert store.nearest_faces([0.0, 0.0, 0.6, 0.8], 5, Filters(tenant="fa").compile(), by_path)[0][0] > 0.99
    assert [
        r["segment_index"] for _, r in store.nearest_faces(face.tolist(), 5, Filters(tenant="fa").compile(), model)
    ] == [0]
    store.delete_video("face-a", "fa", int(time.time() * 1000))
    assert store.nearest_faces(face.tolist(), 5, Filters(tenant="fa").compile(), model) == []
    assert store.nearest_faces([0.0, 0.0, 0.6, 0.8], 5, Filters(tenant="fa").compile(), by_path) == []
    assert store.nearest_faces(face.tolist(), 5, Filters(tenant="fb").compile(), model)[0][1]["video_id"] == "face-b"


def _check_text(store: SegmentStore) -> None:
    """On-screen text rows: searchable by their embedding in their tenant only, none for a segment without
    words, trimmed by a re-upload with fewer segments, never kept for a deleted video (before or after)."""
    rng = np.random.default_rng(11)
    vectors = {name: (lambda v: (v / np.linalg.norm(v)).tolist())(rng.normal(size=8)) for name in "abcd"}

    def found(video: str, index: int, count: int, words: str, tenant: str = "ta") -> SegmentText:
        lines = [ScreenText(text=words, box=(0.1, 0.8, 0.9, 0.9), confidence=0.99, t=index + 0.5)] if words else []
        return SegmentText(
            event_id="e",
            video_id=video,
            tenant=tenant,
            uploaded_at=datetime(2026, 1, 1, tzinfo=UTC),
            segment_index=index,
            segment_count=count,
            start_s=index,
            end_s=index + 1.0,
            lines=lines,
            encoder="t8",
        )

    store.write_text("t8", 8, [(found("text-a", 0, 3, "ONE"), vectors["a"]), (found("text-a", 1, 3, ""), None)])
    store.write_text("t8", 8, [(found("text-a", 2, 3, "THREE"), vectors["b"])])
    store.write_text("t8", 8, [(found("text-b", 0, 1, "OTHER", tenant="tb"), vectors["c"])])
    hits = store.search_text("t8", vectors["a"], 10, Filters(tenant="ta").compile())
    top = hits[0][1]
    assert (top["video_id"], top["segment_index"], top["text"]) == ("text-a", 0, "ONE"), hits
    assert {r["video_id"] for _, r in hits} == {"text-a"} and len(hits) == 2  # no row for the empty segment
    assert json.loads(hits[0][1]["lines"])[0]["box"] == [0.1, 0.8, 0.9, 0.9]
    keys = [("text-a", 0), ("text-a", 1), ("text-b", 0)]
    assert set(store.text_of("t8", keys, Filters(tenant="ta").compile())) == {("text-a", 0)}
    store.write_text("t8", 8, [(found("text-a", 0, 1, "ONE AGAIN"), vectors["a"])])  # re-uploaded: one segment
    assert [r["text"] for _, r in store.search_text("t8", vectors["b"], 10, Filters(tenant="ta").compile())] == [
        "ONE AGAIN"
    ]
    store.delete_video("text-a", "ta", int(time.time() * 1000))
    assert store.search_text("t8", vectors["a"], 10, Filters(tenant="ta").compile()) == []
    store.write_text("t8", 8, [(found("text-a", 0, 1, "LATE"), vectors["a"])])  # a late message of the deleted upload
    assert store.search_text("t8", vectors["a"], 10, Filters(tenant="ta").compile()) == []
    assert [r["video_id"] for _, r in store.search_text("t8", vectors["c"], 10, Filters(tenant="tb").compile())] == [
        "text-b"
    ]


def _check_latest(store: SegmentStore, model: ModelRef, base: np.ndarray) -> None:
    """The newest videos of a tenant, a page at a time: upload time first, the id breaking ties, no video twice
    or missed, no other tenant's; the same through the upload-time window a large catalogue is read by."""
    hours = {"l0": 0, "l1": 5, "l2": 5, "l3": 9, "l4": 2, "l5": 7, "l6": 1}  # l1 and l2 uploaded the same second
    start = datetime(2026, 1, 1, tzinfo=UTC)
    store.write_segments(
        model,
        [
            _embedding(model, v, 0, 1, base, tenant="lister", uploaded_at=start + timedelta(hours=h))
            for v, h in hours.items()
        ]
        + [_embedding(model, "other-tenant", 0, 1, base, tenant="not-lister", uploaded_at=start + timedelta(days=9))],
    )
    expected = ["l3", "l5", "l2", "l1", "l4", "l6", "l0"]
    scope = Filters(tenant="lister").compile()
    for window_rows in (10_000, 2):
        listed: list[str] = []
        after = None
        for _ in range(len(hours)):  # a cursor that does not move would page forever
            rows, after = store.latest_videos(scope, 3, after, window_rows=window_rows)
            listed += [r["video_id"] for r in rows]
            assert all(r["tenant"] == "lister" and r["thumb"] for r in rows)
            assert len(rows) == 3 or after is None, (window_rows, listed)  # only the last page is short
            if after is None:
                break
        assert listed == expected, (window_rows, listed)
    assert store.latest_videos(Filters(tenant="nobody").compile(), 3) == ([], None)


def check_on(backend: Literal["lite", "standalone"]) -> None:
    """The contract switches aliases, so it gets a server of its own."""
    with tempfile.TemporaryDirectory() as data, private_milvus(backend, Path(data)) as uri:
        check(uri)
    print(f"store contract passed on {backend}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("backend", choices=["lite", "standalone"])
    check_on(parser.parse_args().backend)


if __name__ == "__main__":
    main()
