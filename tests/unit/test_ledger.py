"""The ledger's counting, on messages as the stages write them: every "no duplicates" claim of the integration
suites rests on it, so a copy it fails to count as a duplicate is a guarantee nobody checked.

The draining half (up to the ends it took, or a loud failure) needs a broker: tests/integration/test_ledger.py.
"""

from __future__ import annotations

from services.common.kafka.codec import encode
from services.common.messages import DeadLetter, SegmentIndexed, Topics, VideoIndexed, VideoUploaded
from tests.ledger import tally


def indexed(event_id: str) -> tuple[str, bytes]:
    message = VideoIndexed(event_id=event_id, video_id="v1", segment_count=2, collection="c", model_version="1")
    return Topics.INDEXED, encode(message)


def ack(event_id: str, segment: int) -> tuple[str, bytes]:
    message = SegmentIndexed(
        event_id=event_id, video_id="v1", segment_index=segment, segment_count=2, collection="c", model_version="1"
    )
    return Topics.SEGMENTS_INDEXED, encode(message)


def dead(event_id: str, offset: int, topic: str = Topics.UPLOADED) -> tuple[str, bytes]:
    payload = encode(VideoUploaded(event_id=event_id, video_id="v1", uri="file:///a.mp4"))
    letter = DeadLetter.of("decoder", "corrupt_video", "bad", (topic, 0, offset), b"v1", payload)
    return Topics.DEAD_LETTER, encode(letter)


def test_one_message_each_is_no_duplicate() -> None:
    ledger = tally([indexed("e1"), indexed("e2"), ack("e1", 0), ack("e1", 1)], {"e1", "e2"})
    assert ledger.duplicates() == {}
    assert (ledger.count(Topics.INDEXED, "e1"), ledger.count(Topics.SEGMENTS_INDEXED, "e1")) == (1, 2)


def test_a_second_copy_is_a_duplicate_and_a_third_counts_three() -> None:
    twice = tally([indexed("e1"), indexed("e2"), indexed("e1")], {"e1", "e2"})
    assert twice.duplicates() == {(Topics.INDEXED, "e1", -1): 2}
    thrice = tally([indexed("e1")] * 3, {"e1"})
    assert thrice.duplicates() == {(Topics.INDEXED, "e1", -1): 3}
    assert thrice.count(Topics.INDEXED, "e1") == 3


def test_per_segment_topics_count_each_segment_apart() -> None:
    ledger = tally([ack("e1", 0), ack("e1", 1), ack("e1", 1)], {"e1"})
    assert ledger.duplicates() == {(Topics.SEGMENTS_INDEXED, "e1", 1): 2}
    assert ledger.count(Topics.SEGMENTS_INDEXED, "e1") == 3


def test_dead_letters_belong_to_their_upload_and_count_per_source_record() -> None:
    """Two records of one upload dead-lettered are two letters; one record dead-lettered twice (a stage that
    replayed its batch after publishing the letter) is a duplicate."""
    ledger = tally([dead("e1", 10), dead("e1", 11)], {"e1"})
    assert ledger.duplicates() == {} and len(ledger.dead["e1"]) == 2
    replayed = tally([dead("e1", 10), dead("e1", 10)], {"e1"})
    assert list(replayed.duplicates().values()) == [2]
    assert [d.source_offset for d in replayed.dead["e1"]] == [10, 10]


def test_only_the_uploads_asked_about_are_counted_and_foreign_values_are_skipped() -> None:
    ledger = tally(
        [indexed("other"), dead("other", 3), (Topics.INDEXED, b"{not json"), (Topics.INDEXED, b"7"), indexed("e1")],
        {"e1"},
    )
    assert dict(ledger.counts) == {(Topics.INDEXED, "e1", -1): 1}
    assert ledger.dead == {}
