"""Message (de)serialisation: JSON bodies validated by the topic's pydantic model."""

from __future__ import annotations

from typing import TypeVar

from pydantic import BaseModel

M = TypeVar("M", bound=BaseModel)

CONTENT_TYPE = ("content-type", b"application/json")


def encode(message: BaseModel) -> bytes:
    return message.model_dump_json().encode()


def decode(value: bytes | None, model: type[M]) -> M:
    if value is None:
        raise ValueError("message has no value")
    return model.model_validate_json(value)
