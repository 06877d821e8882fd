"""Hostile input through the running pipeline: each case ends as a dead letter with its precise reason (or
is bounded and indexed), and a normal upload published after all of them is still indexed.

Cases come from what was measured live: a SAR 200:1 clip that killed the decoder, a 64x4096 clip at SAR 1:64
that killed the embedder, a playlist that reached a file outside the allowed roots, an event id Milvus
refused for ever, a server error treated as permanent, and more (see each case's name).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from fractions import Fraction
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from confluent_kafka import Producer
from PIL import Image

from services.common.filters import Filters
from services.common.kafka.codec import CONTENT_TYPE
from services.common.kafka.config import producer_config
from services.common.messages import (
    Keyframe,
    SegmentEmbedding,
    Topics,
    VideoInfo,
    VideoSegment,
    VideoUploaded,
    utcnow,
)
from services.common.settings import CommonSettings
from services.common.triton import ClipClient
from services.common.vectors import SegmentStore
from services.intake.registration import register
from services.intake.watch import UploadWatch
from services.media.synthetic import write_clip
from tests import media
from tests.integration.conftest import HOSTILE_HTTP_PORT
from tests.ledger import TopicTap

pytestmark = pytest.mark.hostile
TIMEOUT_S = 240
HOSTILE_URL = f"http://127.0.0.1:{HOSTILE_HTTP_PORT}/hostile/"


@pytest.fixture(scope="module")
def hostile_server(stack: object) -> Iterator[dict[str, int]]:
    """`/hostile/error.mp4` answers 503; `/hostile/norange.mp4` ignores ranges and streams a large body."""
    hits = {"error": 0, "norange_bytes": 0}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path.endswith("error.mp4"):
                hits["error"] += 1
                self.send_error(503, "try later")
                return
            self.send_response(200)
            self.send_header("Content-Length", str(512 * 1024**2))
            self.end_headers()
            chunk = b"\0" * 65536
            try:
                for _ in range(8192):
                    self.wfile.write(chunk)
                    hits["norange_bytes"] += len(chunk)
            except OSError:
                pass

        def log_message(self, *_: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", HOSTILE_HTTP_PORT), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield hits
    server.shutdown()


def _raw(common: CommonSettings, topic: str, key: str, value: bytes) -> None:
    producer = Producer(producer_config(common))
    producer.produce(topic, key=key.encode(), value=value, headers=[CONTENT_TYPE])
    assert producer.flush(30) == 0


def _jpeg(width: int, height: int) -> bytes:
    import io

    buf = io.BytesIO()
    Image.fromarray(np.full((height, width, 3), 120, dtype=np.uint8)).save(buf, format="JPEG")
    return buf.getvalue()


def _segment(event_id: str, jpeg: bytes, info: VideoInfo) -> VideoSegment:
    """A one-segment video as the decoder would publish it, with the given keyframe bytes."""
    return VideoSegment(
        event_id=event_id,
        video_id=event_id,
        segment_index=0,
        segment_count=1,
        start_s=0,
        end_s=1,
        keyframes=[Keyframe(t=0.5, jpeg=jpeg)],
        video=info,
    )


@pytest.fixture
def cleanup(common: CommonSettings) -> Iterator[None]:
    """The fake segments and embeddings name no real source: later modules (reindex) must not meet them."""
    yield
    SegmentStore(common).delete(Filters(tenant="hostile").compile())


def test_hostile_uploads_end_precisely_and_the_pipeline_keeps_going(
    common: CommonSettings, media_root: Path, hostile_server: dict[str, int], tmp_path: Path, cleanup: None
) -> None:
    folder = media_root / "hostile"
    folder.mkdir()
    outside = write_clip(tmp_path / "secret.mp4", seconds=1.0)  # not under any allowed root
    (folder / "loop-a").symlink_to(folder / "loop-b")
    (folder / "loop-b").symlink_to(folder / "loop-a")
    decoder_cases: dict[str, tuple[VideoUploaded, str]] = {
        "sar-200-to-1": (
            register(media.write_sample_aspect(folder / "wide.mkv", (640, 360), Fraction(200, 1))),
            "bad_aspect_ratio",
        ),
        "64x4096-sar-1-to-64": (
            register(media.write_sample_aspect(folder / "tall.mkv", (64, 4096), Fraction(1, 64))),
            "bad_aspect_ratio",
        ),
        "playlist-escaping-the-roots": (
            register(media.write_playlist(folder / "p.m3u8", outside)),
            "format_not_allowed",
        ),
        "name-too-long": (VideoUploaded(video_id="h-long", uri=(folder / ("x" * 3000)).as_uri()), "bad_uri"),
        "symlink-loop": (VideoUploaded(video_id="h-loop", uri=(folder / "loop-a").as_uri()), "bad_uri"),
        "tab-in-uri": (VideoUploaded(video_id="h-tab", uri=HOSTILE_URL + "a\tb.mp4"), "bad_uri"),
        "server-error-is-retried": (
            VideoUploaded(video_id="h-503", uri=HOSTILE_URL + "error.mp4"),
            "source_unavailable",
        ),
        "server-without-ranges": (
            VideoUploaded(video_id="h-norange", uri=HOSTILE_URL + "norange.mp4"),
            "source_unreadable",
        ),
    }
    model = ClipClient(common.triton_grpc_url).embed_texts(["probe"])[1]
    info = VideoInfo(uri="file:///hostile", uploaded_at=utcnow(), tenant="hostile")
    segment_cases: dict[str, tuple[VideoSegment, str | None]] = {
        "keyframe-not-an-image": (_segment("h-badjpeg", b"not a jpeg", info), "bad_keyframe"),
        "keyframe-40000x1-is-bounded-and-indexed": (_segment("h-sliver", _jpeg(40000, 1), info), None),
    }
    embedding = SegmentEmbedding(
        event_id="h-dim",
        video_id="h-dim",
        segment_index=0,
        segment_count=1,
        start_s=0,
        end_s=1,
        keyframe_times=[0.5],
        vector=[0.1, 0.2, 0.3],
        model=model,
        video=info,
    )
    indexer_cases: dict[str, tuple[SegmentEmbedding, str]] = {
        "vector-of-the-wrong-dimension": (embedding, "milvus_rejected"),
        "event-id-longer-than-its-column": (
            embedding.model_copy(
                update={"event_id": "e" * 70, "video_id": "h-longid", "vector": [0.0] * (model.dim - 1) + [1.0]}
            ),
            "field_too_long",
        ),
    }
    raw_cases = {  # published as bytes: our own models refuse to build them
        "event-id-of-70-characters": json.dumps(
            {"event_id": "r" * 70, "video_id": "h-raw1", "uri": (folder / "wide.mkv").as_uri()}
        ).encode(),
        "title-of-400-cjk-characters": json.dumps(
            {"event_id": "h-raw2", "video_id": "h-raw2", "uri": (folder / "wide.mkv").as_uri(), "title": "漢" * 400}
        ).encode(),
        "not-json": b"{not json",
    }
    after = register(write_clip(folder / "after.mp4", seconds=2.0, seed=5))
    watch = UploadWatch(common)
    tap = TopicTap(common)
    producer = Producer(producer_config(common))
    for upload, _ in decoder_cases.values():
        producer.produce(Topics.UPLOADED, key=upload.video_id.encode(), value=upload.model_dump_json().encode())
    for segment, _ in segment_cases.values():
        producer.produce(Topics.SEGMENTS, key=segment.video_id.encode(), value=segment.model_dump_json().encode())
    for emb, _ in indexer_cases.values():
        producer.produce(Topics.EMBEDDINGS, key=emb.video_id.encode(), value=emb.model_dump_json().encode())
    for name, value in raw_cases.items():
        producer.produce(Topics.UPLOADED, key=name.encode(), value=value)
    producer.produce(Topics.SEGMENTS_INDEXED, key=b"enricher-not-json", value=b"{not an ack")
    producer.produce(Topics.UPLOADED, key=after.video_id.encode(), value=after.model_dump_json().encode())
    assert producer.flush(30) == 0

    events = [
        *(u.event_id for u, _ in decoder_cases.values()),
        *(s.event_id for s, _ in segment_cases.values()),
        *(e.event_id for e, _ in indexer_cases.values()),
        after.event_id,
    ]
    outcomes = watch.wait(events, TIMEOUT_S)
    watch.close()
    letters = tap.dead_letters()
    raw_letters = {d.key: d for d in letters if d.key in raw_cases}
    enricher_letters = [d for d in letters if d.key == "enricher-not-json"]
    tap.close()

    assert after.event_id in outcomes.indexed, "the upload after the hostile ones must still be indexed"
    seen = {
        name: outcomes.failed[m.event_id].reason if m.event_id in outcomes.failed else "indexed"
        for cases in (decoder_cases, segment_cases, indexer_cases)
        for name, (m, _) in cases.items()
    }
    wanted = {
        name: reason or "indexed"
        for cases in (decoder_cases, segment_cases, indexer_cases)
        for name, (_, reason) in cases.items()
    }
    assert seen == wanted
    assert {key: d.reason for key, d in raw_letters.items()} == dict.fromkeys(raw_cases, "malformed_message")
    assert "UTF-8 bytes" in raw_letters["title-of-400-cjk-characters"].detail
    assert [(d.service, d.reason, d.source_topic) for d in enricher_letters] == [
        ("enricher", "malformed_message", Topics.SEGMENTS_INDEXED)
    ]
    retried = outcomes.failed[decoder_cases["server-error-is-retried"][0].event_id]
    assert len(retried.attempts) == int(common.retry_max_attempts) and hostile_server["error"] >= 2
    assert all("source_unavailable" in a for a in retried.attempts)
    assert hostile_server["norange_bytes"] < 64 * 1024**2, "the body of a server without ranges was read"
