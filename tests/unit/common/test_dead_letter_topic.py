"""A backfill's event is dead-lettered to the backfill's topic wherever it was consumed (after a reindex's switch
the indexer reads backfills among the uploads): the upload's status, read from `videos.deadletter`, stands."""

from services.common.kafka.processor import ProcessorConfig, dead_letter_topic
from services.common.messages import Topics, event_id_of

FRESH = ProcessorConfig(service="indexer", group_id="g", input_topic=Topics.EMBEDDINGS)


def test_a_backfill_event_goes_to_the_backfill_dead_letters() -> None:
    payload = b'{"event_id":"backfill-0123abcd","video_id":"v"}'
    assert event_id_of(payload) == "backfill-0123abcd"
    assert dead_letter_topic(FRESH, payload) == Topics.BACKFILL_DEAD_LETTER


def test_an_upload_or_an_unreadable_payload_goes_to_the_configured_topic() -> None:
    assert dead_letter_topic(FRESH, b'{"event_id":"e-1","video_id":"v"}') == Topics.DEAD_LETTER
    assert dead_letter_topic(FRESH, b'{"video_id":"v","title":"backfill-x"}') == Topics.DEAD_LETTER  # no event id
    assert dead_letter_topic(FRESH, b"{not json") == Topics.DEAD_LETTER
    assert dead_letter_topic(FRESH, None) == Topics.DEAD_LETTER
    assert event_id_of(b'{"event_id":"' + b"x" * 65 + b'"}') is None  # longer than an event id may be
