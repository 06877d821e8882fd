"""What a door is asked to register, and what it answers."""

from __future__ import annotations

import hashlib
import json

from pydantic import BaseModel, ConfigDict, Field

from services.common.messages import MAX_TAGS, Creator, Metadata, Tag, Title, Uri


class Registration(BaseModel):
    model_config = ConfigDict(extra="forbid")

    uri: Uri = Field(description="file://, http(s):// or s3:// source the decoder is allowed to read")
    title: Title = ""
    creator: Creator = ""
    tags: list[Tag] = Field(default_factory=list, max_length=MAX_TAGS)
    metadata: Metadata = Field(
        default_factory=dict, description="free key/values (identifier keys; string, number or boolean values)"
    )

    def fingerprint(self) -> str:
        """The request's identity for Idempotency-Key reuse: the same key with another payload is refused."""
        canonical = json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()


class Registered(BaseModel):
    event_id: str
    video_id: str
    uri: str
    status_url: str
    replayed: bool = Field(default=False, description="an earlier request with this Idempotency-Key registered it")

    @classmethod
    def of(cls, event_id: str, video_id: str, uri: str, replayed: bool = False) -> Registered:
        return cls(
            event_id=event_id, video_id=video_id, uri=uri, status_url=f"/v1/uploads/{event_id}", replayed=replayed
        )
