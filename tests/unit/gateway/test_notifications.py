"""Reading object-store notifications: the AWS S3 event JSON and SeaweedFS filer change events."""

import json

import pytest

from services.common.kafka.processor import Outgoing, Received
from services.common.messages import VideoUploaded
from services.gateway.notifications import (
    NotificationRecord,
    Notifications,
    NotificationSettings,
    ObjectEvent,
    Route,
    Unreadable,
    Unusable,
    parse_filer_event,
    parse_s3_event,
    route_of,
)

# the record layout AWS documents (docs.aws.amazon.com/AmazonS3/latest/userguide/notification-content-structure.html)
AWS_RECORD = {
    "eventVersion": "2.1",
    "eventSource": "aws:s3",
    "awsRegion": "us-east-1",
    "eventTime": "2026-11-26T10:00:00.000Z",
    "eventName": "ObjectCreated:Put",
    "s3": {
        "s3SchemaVersion": "1.0",
        "bucket": {"name": "uploads", "arn": "arn:aws:s3:::uploads"},
        "object": {"key": "inbox/tenant-a/My+Clip%281%29.mp4", "size": 1024, "eTag": "abc", "sequencer": "0A1B"},
    },
}


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _field(number: int, value: bytes | int) -> bytes:
    if isinstance(value, int):
        return _varint(number << 3) + _varint(value)
    return _varint(number << 3 | 2) + _varint(len(value)) + value


def _entry(name: str, size: int, mtime: int, directory: bool = False) -> bytes:
    attributes = _field(1, size) + _field(2, mtime)
    return _field(1, name.encode()) + _field(2, int(directory)) + _field(4, attributes)


def test_s3_event_json_reads_created_and_removed_with_decoded_keys() -> None:
    removed = AWS_RECORD | {"eventName": "ObjectRemoved:Delete"}
    other = AWS_RECORD | {"eventName": "ObjectRestore:Completed"}
    events = parse_s3_event(json.dumps({"Records": [AWS_RECORD, removed, other]}).encode())
    assert [e.kind for e in events] == ["created", "removed"]
    assert events[0].bucket == "uploads" and events[0].key == "inbox/tenant-a/My Clip(1).mp4"
    assert events[0].identity == "0A1B" and events[0].at.year == 2026


@pytest.mark.parametrize(
    "value",
    [b"not json", b"[]", b'{"Records": [{"eventName": "ObjectCreated:Put"}]}', b'{"Records": [{"s3": {}}]}'],
)
def test_unreadable_s3_events_are_permanent_errors(value: bytes) -> None:
    with pytest.raises(Unreadable):
        parse_s3_event(value)


def test_filer_events_become_object_events() -> None:
    path = b"/buckets/uploads/inbox/tenant-a/clip.mp4"
    (created,) = parse_filer_event(path, _field(2, _entry("clip.mp4", 10, 1_700_000_000)), "/buckets")
    assert (created.kind, created.bucket, created.key) == ("created", "uploads", "inbox/tenant-a/clip.mp4")
    (removed,) = parse_filer_event(path, _field(1, _entry("clip.mp4", 10, 1_700_000_000)), "/buckets")
    assert removed.kind == "removed"
    assert parse_filer_event(path, _field(2, _entry("d", 0, 0, directory=True)), "/buckets") == []
    assert parse_filer_event(b"/elsewhere/x.mp4", _field(2, _entry("x.mp4", 1, 1)), "/buckets") == []
    parts = b"/buckets/uploads/.uploads/abc/0001.part"
    assert parse_filer_event(parts, _field(2, _entry("0001.part", 1, 1)), "/buckets") == []
    with pytest.raises(Unreadable):
        parse_filer_event(path, b"\x0a\xff\xff", "/buckets")


def test_routes_match_whole_path_segments() -> None:
    routes = [Route(bucket="uploads", prefix="inbox/tenant-a", tenant="tenant-a")]

    def event(key: str, bucket: str = "uploads") -> ObjectEvent:
        return parse_s3_event(
            json.dumps(
                {"Records": [AWS_RECORD | {"s3": {"bucket": {"name": bucket}, "object": {"key": key}}}]}
            ).encode()
        )[0]

    assert route_of(event("inbox/tenant-a/x.mp4"), routes) is routes[0]
    assert route_of(event("inbox/tenant-a/deep/x.mp4"), routes) is routes[0]
    assert route_of(event("inbox/tenant-ab/x.mp4"), routes) is None  # a longer name is not the segment
    assert route_of(event("inbox/tenant-a"), routes) is None
    assert route_of(event("inbox/tenant-a/x.mp4", bucket="other"), routes) is None


def test_an_object_that_cannot_become_an_upload_is_a_permanent_error_with_its_reason() -> None:
    settings = NotificationSettings(routes=[Route(bucket="uploads", prefix="inbox", tenant="a")])
    record = AWS_RECORD | {"s3": {"bucket": {"name": "uploads"}, "object": {"key": "inbox/" + "x" * 5000 + ".mp4"}}}
    value = NotificationRecord(value=json.dumps({"Records": [record]}).encode())
    received = Received(value, raw=None, span=None)  # type: ignore[arg-type]  # S3 JSON never reads the raw message
    with pytest.raises(Unusable, match="inbox/x"):
        Notifications(settings).handle([received])
    fine = AWS_RECORD | {"s3": {"bucket": {"name": "uploads"}, "object": {"key": "inbox/clip.mp4", "eTag": "e"}}}
    (out,) = Notifications(settings).handle(
        [Received(NotificationRecord(value=json.dumps({"Records": [fine]}).encode()), raw=None, span=None)]  # type: ignore[arg-type]
    )
    assert isinstance(out, Outgoing) and isinstance(out.message, VideoUploaded)
    assert (out.message.uri, out.message.tenant) == ("s3://uploads/inbox/clip.mp4", "a")
