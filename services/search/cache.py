"""The generation cache: "a request like one already generated gets the video instead of a new generation".

An entry is a generated video registered with its request (prompt, generator, duration, aspect ratio, seed)
and cost: the video goes through the normal pipeline (`videos.uploaded`) and the prompt's text embedding
is stored with the parameters in the served model's cache collection. A lookup embeds the new prompt,
filters on the parameters that must match exactly (generator, aspect ratio, duration within 0.05 s, the
seed when given, not expired, the caller's tenant) and takes the nearest cached prompt; it is a hit only at
or above the model's `prompt_match` threshold *and* once the entry's video is indexed, else a miss that
reports the best score. Reference images (image-to-video, style references) condition a generation as
much as its prompt: an entry made with references hits only a request with references whose mean image
vector is as close as a near-duplicate (the model's `duplicate` threshold), and one made without only a
request without."""

from __future__ import annotations

import base64
import hashlib
import json
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from prometheus_client import Counter
from pydantic import Base64Bytes, BaseModel, ConfigDict, Field, field_validator

from services.common.filters import number_literal, string_literal
from services.common.messages import Creator, Uri
from services.quality.checks import unit

LOOKUPS = Counter("clipstream_cache_lookups_total", "generation-cache lookups", ["outcome"])
SECONDS_SAVED = Counter(
    "clipstream_cache_generation_seconds_saved_total", "generated seconds served from the cache instead"
)
DURATION_TOLERANCE_S = 0.05
MAX_REFERENCES = 8
MAX_REFERENCE_BYTES = 10 * 1024**2


class Generation(BaseModel):
    """The parameters a cached video must match exactly, and the prompt it is compared on."""

    model_config = ConfigDict(extra="forbid")

    prompt: str = Field(min_length=1, max_length=1000)
    generator: str = Field(min_length=1, max_length=128, description="the generation model, e.g. 'veo-3'")
    duration_s: float = Field(gt=0, le=3600, allow_inf_nan=False)
    aspect_ratio: str = Field(default="16:9", pattern=r"^\d{1,4}:\d{1,4}$")
    seed: int | None = Field(default=None, ge=0, le=2**62)
    params: dict[str, str | int | float | bool] = Field(default_factory=dict, max_length=32)
    references: list[Base64Bytes] = Field(
        default_factory=list, max_length=MAX_REFERENCES, description="reference images (base64 JPEG/PNG/WebP)"
    )

    @field_validator("references")
    @classmethod
    def _small_enough(cls, value: list[bytes]) -> list[bytes]:
        for i, image in enumerate(value):
            if len(image) > MAX_REFERENCE_BYTES:
                raise ValueError(f"reference {i} is {len(image)} bytes, at most {MAX_REFERENCE_BYTES}")
        return value

    def provenance(self) -> dict[str, Any]:
        """The request as stored with an entry: references by their SHA-256, never their bytes."""
        return self.model_dump(exclude={"references"}) | {
            "references": [hashlib.sha256(r).hexdigest() for r in self.references]
        }


class CacheEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    uri: Uri = Field(description="the generated video, where the decoder may read it")
    request: Generation
    cost: float = Field(default=0.0, ge=0, description="what generating it cost (for provenance)")
    creator: Creator = ""
    ttl_s: int | None = Field(default=None, ge=1, le=10 * 365 * 86400, description="none: never expires")


def encode_vector(vector: npt.ArrayLike | None) -> str:
    if vector is None:
        return ""
    return base64.b64encode(np.asarray(vector, dtype="<f2").tobytes()).decode()


def decode_vector(text: str) -> npt.NDArray[np.float32] | None:
    return np.frombuffer(base64.b64decode(text), dtype="<f2").astype(np.float32) if text else None


def entry_row(
    entry_id: str,
    tenant: str,
    video_id: str,
    entry: CacheEntry,
    vector: list[float],
    references: npt.ArrayLike | None = None,
) -> dict[str, Any]:
    now = int(time.time() * 1000)
    provenance = {
        "request": entry.request.provenance(),
        "uri": entry.uri,
        "cost": entry.cost,
        "creator": entry.creator,
        "created_at": now,
    }
    return {
        "pk": entry_id,
        "tenant": tenant,
        "video_id": video_id,
        "generator": entry.request.generator,
        "aspect_ratio": entry.request.aspect_ratio,
        "duration_s": entry.request.duration_s,
        "seed": -1 if entry.request.seed is None else entry.request.seed,
        "expires_at": 0 if entry.ttl_s is None else now + entry.ttl_s * 1000,
        "provenance": json.dumps(provenance, ensure_ascii=False)[:8192],
        "references": encode_vector(references),
        "vector": vector,
    }


def new_entry_id() -> str:
    return "c" + uuid.uuid4().hex


def lookup_filter(tenant: str, request: Generation, now_ms: int | None = None) -> str:
    """Built from validated values only (the filter builder's literals); entries expired at `now_ms` (the
    clock by default) are left out."""
    now = int(time.time() * 1000) if now_ms is None else now_ms
    clauses = [
        f"tenant == {string_literal(tenant)}",
        f"generator == {string_literal(request.generator)}",
        f"aspect_ratio == {string_literal(request.aspect_ratio)}",
        f"duration_s >= {number_literal(request.duration_s - DURATION_TOLERANCE_S)}",
        f"duration_s <= {number_literal(request.duration_s + DURATION_TOLERANCE_S)}",
        f"(expires_at == 0 or expires_at > {number_literal(now)})",
    ]
    if request.seed is not None:
        clauses.append(f"seed == {number_literal(request.seed)}")
    return " and ".join(clauses)


@dataclass(frozen=True)
class Candidate:
    """A cached entry a request may be served from (once its video is indexed)."""

    score: float
    reference_score: float | None
    row: dict[str, Any]
    provenance: dict[str, Any]


def screen(
    found: Iterable[tuple[float, dict[str, Any]]],
    request: Generation,
    references: npt.NDArray[np.float32] | None,
    threshold: float,
    reference_threshold: float,
) -> tuple[list[Candidate], float | None]:
    """The entries of `found` ((prompt score, row), best first) a request may be served from, in order,
    and the best prompt score among those with its parameters and kind of references (what a miss reports).
    Both thresholds are met *at or above*: each is the lowest score still measured to be the same request
    (the prompt's `prompt_match`) or the same picture (the references' `duplicate`)."""
    candidates: list[Candidate] = []
    best: float | None = None
    for score, row in found:
        provenance = json.loads(row["provenance"])
        if provenance["request"].get("params", {}) != request.params:
            continue
        theirs = decode_vector(row.get("references") or "")
        if (theirs is None) != (references is None):
            continue  # one was conditioned on images, the other not
        reference_score = None if theirs is None or references is None else float(unit(theirs)[0] @ references)
        if reference_score is not None and reference_score < reference_threshold:
            continue
        best = score if best is None else max(best, score)
        if score >= threshold:
            candidates.append(Candidate(score, reference_score, row, provenance))
    return candidates, best
