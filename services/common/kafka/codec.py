"""Message (de)serialisation: JSON bodies validated by the topic's pydantic model."""

from __future__ import annotations

from typing import TypeVar

from pydantic import BaseModel

M = TypeVar("M", bound=BaseModel)

CONTENT_TYPE = ("content-type", b"application/json")


def encode(message: BaseModel) -> bytes:
    return message.model_dump_json().encode()


def decode(value: bytes | None, model: type[M]) -> M:
    """JSON validated by `model`; a model with a `from_bytes` constructor takes the raw value (a topic
    written by another system in its own format, e.g. an object store's notifications)."""
    if value is None:
        raise ValueError("message has no value")
    from_bytes = getattr(model, "from_bytes", None)
    if from_bytes is not None:
        return from_bytes(value)
    return model.model_validate_json(value)
