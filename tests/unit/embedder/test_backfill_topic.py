"""Where a backfill's embeddings go: its own topic until the reindex's switch serves its target, then among the
uploads' (`videos.embeddings`), where one consumer per video orders it against a re-upload."""

from services.common.messages import ModelRef, Topics
from services.embedder.service import backfill_topic

TARGET = ModelRef(name="clip", version="v2", dim=8)


def test_before_the_switch_a_backfill_has_its_own_topic() -> None:
    assert backfill_topic(TARGET, None) == Topics.BACKFILL_EMBEDDINGS  # nothing served yet
    assert backfill_topic(TARGET, ModelRef(name="clip", version="v1", dim=8)) == Topics.BACKFILL_EMBEDDINGS


def test_once_its_target_is_served_a_backfill_joins_the_uploads() -> None:
    assert backfill_topic(TARGET, ModelRef(name="clip", version="v2", dim=8)) == Topics.EMBEDDINGS
