"""Embed with the model the served collection needs, whoever serves it.

A collection only ever holds vectors of one model, and the alias may move to a new model's collections
(`clipstream reindex`) before Triton is rolled to that model. Until then, queries (search) and new uploads
(embedder) are embedded in-process with the model recorded on the served collection, so searches keep
answering and uploads land in the collections that are served, not in the ones just switched away from.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import numpy as np

from services.common.errors import Misconfigured, TransientError
from services.common.messages import ModelRef

if TYPE_CHECKING:
    from services.clip.loader import LoadedClip

log = logging.getLogger(__name__)


class Catalogue(Protocol):
    def served_collection(self) -> str | None: ...

    def model_of(self, collection: str) -> tuple[ModelRef, str]: ...


@dataclass(frozen=True)
class Target:
    collection: str
    model: ModelRef
    spec: str


@functools.lru_cache(maxsize=2)
def in_process(spec: str) -> LoadedClip:
    from services.clip.loader import load_clip  # torch: imported by the stages that embed in-process only

    return load_clip(spec)


class ModelRouter:
    """`ttl_s` 0 resolves the served collection on every call (a query must match it exactly); a stage may
    cache it for a few seconds."""

    def __init__(self, catalogue: Catalogue, ttl_s: float = 0.0) -> None:
        self.catalogue = catalogue
        self.ttl_s = ttl_s
        self._models: dict[str, tuple[ModelRef, str]] = {}
        self._target: Target | None = None
        self._resolved_at = float("-inf")
        self._remote_version: str | None = None  # the model Triton answered with last

    def target(self) -> Target | None:
        if self.ttl_s <= 0 or time.monotonic() - self._resolved_at > self.ttl_s:
            try:
                self._resolve()
            except TransientError:
                if self.ttl_s <= 0:
                    raise
                # a stage keeps the last known target while Milvus is away: it is not on its critical path
                log.warning("served collection unknown (Milvus unavailable): keeping the last one")
        return self._target

    def _resolve(self) -> None:
        served = self.catalogue.served_collection()
        if served is None:
            self._target = None
        else:
            if served not in self._models:
                self._models[served] = self.catalogue.model_of(served)
            model, spec = self._models[served]
            self._target = Target(served, model, spec)
        self._resolved_at = time.monotonic()
        self._remote_version = None  # ask Triton again: it may have been rolled meanwhile

    def embed(
        self,
        remote: Callable[[], tuple[np.ndarray, ModelRef]],
        local: Callable[[LoadedClip], np.ndarray],
    ) -> tuple[np.ndarray, ModelRef, Target | None]:
        """Vectors, the model that made them, and the served target they belong to (None: nothing served yet,
        Triton's model starts the catalogue)."""
        target = self.target()
        if target is None or self._remote_version in (None, target.model.version):
            vectors, model = remote()
            self._remote_version = model.version
            if target is None or model.version == target.model.version:
                return vectors, model, target
        if not target.spec:
            raise Misconfigured(
                f"Triton serves {self._remote_version}, the served collection needs {target.model.name}:"
                f"{target.model.version}, and no loadable spec is recorded for it",
                reason="model_mismatch",
            )
        log.warning(
            "embedding in-process until Triton serves the collection's model",
            extra={"served": target.collection, "triton_model": self._remote_version, "model": target.model.version},
        )
        return local(in_process(target.spec)), target.model, target
