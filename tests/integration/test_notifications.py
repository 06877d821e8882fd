"""Object-store notifications end to end: SeaweedFS (the real object store the test session starts) publishes
its filer's change events into Kafka; objects put under a routed prefix become searchable videos of the
route's tenant, and removing the object removes the video."""

from __future__ import annotations

import time
from pathlib import Path

import boto3
import pytest
from botocore.config import Config
from confluent_kafka import Producer

from services.common.errors import ClipstreamError
from services.common.filters import Filters
from services.common.messages import Topics
from services.common.settings import CommonSettings
from services.common.vectors import SegmentStore
from services.intake.registration import video_id_for
from services.media.synthetic import write_clip
from tests.integration.conftest import NOTIFY_TOPIC, S3_URL
from tests.ledger import TopicTap


@pytest.fixture(scope="module")
def s3(stack: object) -> object:
    return boto3.client(
        "s3",
        endpoint_url=S3_URL,
        region_name="us-east-1",
        aws_access_key_id="test-access-key",
        aws_secret_access_key="test-secret-key",
        config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
    )


def _rows(store: SegmentStore, video_id: str) -> int:
    try:
        return store.count(Filters(video_ids=[video_id]).compile())
    except ClipstreamError:  # nothing indexed yet in this session: no served collection
        return 0


def _until(check: object, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, what
        time.sleep(0.3)


def test_an_object_put_under_a_routed_prefix_is_indexed_and_its_removal_deletes_it(
    common: CommonSettings, media_root: Path, s3: object
) -> None:
    clip = write_clip(media_root / "notify" / "dropped.mp4", seconds=4.0, size=(320, 180), seed=401)
    key = "inbox/notify-a/dropped.mp4"
    video_id = video_id_for("notify-a", f"s3://uploads/{key}")
    store = SegmentStore(common)
    tap = TopicTap(common)
    started = time.monotonic()
    s3.put_object(Bucket="uploads", Key=key, Body=clip.read_bytes(), ContentType="video/mp4")  # type: ignore[attr-defined]
    s3.put_object(Bucket="uploads", Key="elsewhere/ignored.mp4", Body=clip.read_bytes())  # type: ignore[attr-defined]
    _until(lambda: _rows(store, video_id) == 1, 120, "the notified object was never indexed")
    print(f"object put to indexed: {time.monotonic() - started:.2f}s")
    video = store.video(video_id)
    assert video is not None and video[0]["tenant"] == "notify-a" and video[0]["creator"] == "inbox"
    assert _rows(store, video_id_for("notify-a", "s3://uploads/elsewhere/ignored.mp4")) == 0  # no route

    s3.delete_object(Bucket="uploads", Key=key)  # type: ignore[attr-defined]
    _until(lambda: _rows(store, video_id) == 0, 60, "the removed object's video was never deleted")
    uploaded = [v for v in tap.values(Topics.UPLOADED) if video_id.encode() in v]
    assert len(uploaded) == 1, "one object, one registration"


def test_a_malformed_notification_is_dead_lettered_and_the_consumer_keeps_going(
    common: CommonSettings, media_root: Path, s3: object
) -> None:
    tap = TopicTap(common)
    producer = Producer({"bootstrap.servers": common.kafka_bootstrap})
    producer.produce(NOTIFY_TOPIC, key=b"/buckets/uploads/inbox/notify-a/x.mp4", value=b"\x0a\xff\xff")
    producer.produce(NOTIFY_TOPIC, key=b"k", value=b'{"Records": [{"eventName": "ObjectCreated:Put"}]}')
    producer.flush(10)
    clip = write_clip(media_root / "notify" / "after.mp4", seconds=4.0, size=(320, 180), seed=402)
    key = "inbox/notify-b/after.mp4"
    s3.put_object(Bucket="uploads", Key=key, Body=clip.read_bytes())  # type: ignore[attr-defined]
    store = SegmentStore(common)
    video_id = video_id_for("notify-b", f"s3://uploads/{key}")
    _until(lambda: _rows(store, video_id) == 1, 120, "the consumer stopped after a bad record")
    letters = [d for d in tap.dead_letters() if d.source_topic == NOTIFY_TOPIC]
    assert sorted(d.reason for d in letters) == ["malformed_notification", "malformed_notification"]
