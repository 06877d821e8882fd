"""The fresh stages a reindex waits on after its switch (`Reindex(drain=...)`): their input topics and consumer
groups, as their settings (and env) name them."""

from __future__ import annotations

from pydantic_settings import SettingsConfigDict

from services.common.messages import Topics
from services.common.settings import StageSettings
from services.indexer.settings import IndexerSettings


class _EmbedderGroup(StageSettings):
    """The embedder's group as its own settings read it (`CLIPSTREAM_EMBEDDER_GROUP_ID`), without depending on
    the embedder's package."""

    model_config = SettingsConfigDict(env_prefix="CLIPSTREAM_EMBEDDER_", extra="ignore")

    group_id: str = "clipstream-embedder"
    health_port: int = 0


def stage_groups() -> tuple[tuple[str, str], ...]:
    return ((Topics.SEGMENTS, _EmbedderGroup().group_id), (Topics.EMBEDDINGS, IndexerSettings().group_id))
