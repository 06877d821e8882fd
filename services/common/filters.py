r"""Typed metadata filters compiled to Milvus boolean expressions by one builder.

User values never become expression syntax: field names come from this module, numbers are validated
numbers, and strings are encoded as double-quoted literals with only the escapes Milvus' parser reads
back (`\\`, `\"`, `\n`, `\t`, `\r`; it knows no `\uXXXX`, so other characters, emoji included, stay
raw UTF-8 and other control characters are refused), so a value like `x" or 1==1 or "` stays one string.
Milvus Lite does not accept parameter templates, or those would carry the values instead.
"""

from __future__ import annotations

import math
from datetime import datetime

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

from services.common.messages import MAX_TAGS, MetaKey, MetaValue, Tag

_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\t": "\\t", "\r": "\\r"}


def string_literal(value: str) -> str:
    bad = next((c for c in value if (ord(c) < 0x20 and c not in _ESCAPES) or ord(c) == 0x7F), None)
    if bad is not None:
        raise ValueError(f"control character U+{ord(bad):04X} cannot be filtered on")
    return '"' + "".join(_ESCAPES.get(c, c) for c in value) + '"'


def number_literal(value: float | int) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"not a finite number: {value!r}")
    return repr(int(value)) if isinstance(value, int) else repr(float(value))


class MetadataFilters(BaseModel):
    """What an API caller may filter on; the tenant is not among them (it comes from the API key)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    creator: str | None = Field(default=None, max_length=256)
    uploaded_after: AwareDatetime | None = None
    uploaded_before: AwareDatetime | None = None
    tags: list[Tag] | None = Field(default=None, max_length=MAX_TAGS, description="videos carrying all of these")
    min_width: int | None = Field(default=None, ge=0, le=100_000)
    max_width: int | None = Field(default=None, ge=0, le=100_000)
    min_height: int | None = Field(default=None, ge=0, le=100_000)
    max_height: int | None = Field(default=None, ge=0, le=100_000)
    min_duration_s: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    max_duration_s: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    metadata: dict[MetaKey, MetaValue] | None = Field(
        default=None, max_length=8, description="free metadata: videos whose keys equal all of these values"
    )
    min_faces: int | None = Field(default=None, ge=0, le=32, description="segments with at least this many faces")

    @field_validator("metadata")
    @classmethod
    def _expressible_values(cls, value: dict[str, object] | None) -> dict[str, object] | None:
        for v in (value or {}).values():
            if isinstance(v, str):
                string_literal(v)
        return value

    @field_validator("creator")
    @classmethod
    def _expressible(cls, value: str | None) -> str | None:
        if value is not None:
            string_literal(value)  # refused here (422), not when the expression is built
        return value

    def scoped(self, tenant: str) -> Filters:
        return Filters(**self.model_dump(exclude_none=True), tenant=tenant)


class Filters(MetadataFilters):
    tenant: str | None = Field(default=None, max_length=64)
    video_ids: list[str] | None = Field(default=None, max_length=1000)
    exclude_video_ids: list[str] | None = Field(default=None, max_length=1000)

    def compile(self) -> str:
        clauses: list[str] = []
        if self.tenant is not None:
            clauses.append(f"tenant == {string_literal(self.tenant)}")
        if self.creator is not None:
            clauses.append(f"creator == {string_literal(self.creator)}")
        if self.video_ids is not None:
            clauses.append(f"video_id in [{', '.join(string_literal(v) for v in self.video_ids)}]")
        if self.exclude_video_ids:
            clauses.append(f"video_id not in [{', '.join(string_literal(v) for v in self.exclude_video_ids)}]")
        for field, op, value in (
            ("uploaded_at", ">=", _epoch(self.uploaded_after)),
            ("uploaded_at", "<", _epoch(self.uploaded_before)),
            ("width", ">=", self.min_width),
            ("width", "<=", self.max_width),
            ("height", ">=", self.min_height),
            ("height", "<=", self.max_height),
            ("duration_s", ">=", self.min_duration_s),
            ("duration_s", "<=", self.max_duration_s),
            ("faces", ">=", self.min_faces),
        ):
            if value is not None:
                clauses.append(f"{field} {op} {number_literal(value)}")
        for key, wanted in (self.metadata or {}).items():  # the key matched ^[A-Za-z][A-Za-z0-9_]*$
            clauses.append(f'metadata["{key}"] == {_scalar_literal(wanted)}')
        for tag in self.tags or []:
            literal = string_literal(tag)
            clauses.append("(" + " or ".join(f"tag{i} == {literal}" for i in range(MAX_TAGS)) + ")")
        return " and ".join(clauses)


def _scalar_literal(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return string_literal(value)
    if isinstance(value, int | float):
        return number_literal(value)
    raise ValueError(f"not a metadata value: {value!r}")


def _epoch(dt: datetime | None) -> int | None:
    return None if dt is None else int(dt.timestamp())
