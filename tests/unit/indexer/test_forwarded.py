"""Which backfill embeddings the indexer's backfill consumer hands to the uploads' topic: those of the served model
(after the reindex's switch, where one consumer per video must write), and no others."""

from services.common.messages import ModelRef
from services.common.vectors import segments_collection
from services.indexer.service import forwarded

TARGET = ModelRef(name="clip", version="v2", dim=8)


def test_before_the_switch_a_backfill_is_written_by_its_own_consumer() -> None:
    assert not forwarded(TARGET, None)  # nothing served yet
    assert not forwarded(TARGET, segments_collection(ModelRef(name="clip", version="v1", dim=8)))


def test_once_its_model_is_served_a_backfill_goes_among_the_uploads() -> None:
    assert forwarded(TARGET, segments_collection(TARGET))
