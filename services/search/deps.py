"""What the search routes depend on: built once per app by `create_app`, kept on `app.state`, reached through
one dependency each.

The engine (Triton and Milvus clients), the curation runs over its store and the registrar (Kafka) are made on
first use, so an app builds without those services running, and tests can hand in their own engine.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Annotated, Generic, TypeVar

from fastapi import Depends, Request

from services.intake.registrar import Registrar
from services.media.sources import SourcePolicy
from services.search.curation_jobs import CurationRuns
from services.search.engine import SearchEngine
from services.search.login import LoginDesk
from services.search.playback import Links
from services.search.settings import SearchSettings

T = TypeVar("T")


class Once(Generic[T]):
    """A part made on its first use, then always the same one (concurrent first uses make it once)."""

    def __init__(self, make: Callable[[], T]) -> None:
        self._make = make
        self._made: T | None = None
        self._lock = threading.Lock()

    def get(self) -> T:
        with self._lock:
            if self._made is None:
                self._made = self._make()
            return self._made


# app.state is untyped: each dependency says what it gives


def engine(request: Request) -> SearchEngine:
    return request.app.state.engine.get()


def settings(request: Request) -> SearchSettings:
    return request.app.state.settings


def curation_runs(request: Request) -> CurationRuns:
    return request.app.state.curation_runs.get()


def links(request: Request) -> Links:
    return request.app.state.links


def media_policy(request: Request) -> SourcePolicy:
    """Which sources a generated video registered through the cache may come from, and which play links serve."""
    return request.app.state.media_policy


def registrar(request: Request) -> Registrar:
    """The one registration step every door uses (the generation cache registers the videos it caches)."""
    return request.app.state.registrar.get()


def logins(request: Request) -> LoginDesk:
    """Redeems the one-time login links the CLI writes into the state folder."""
    return request.app.state.logins


Engine = Annotated[SearchEngine, Depends(engine)]
Settings = Annotated[SearchSettings, Depends(settings)]
Runs = Annotated[CurationRuns, Depends(curation_runs)]
PlayLinks = Annotated[Links, Depends(links)]
MediaPolicy = Annotated[SourcePolicy, Depends(media_policy)]
Registrations = Annotated[Registrar, Depends(registrar)]
Logins = Annotated[LoginDesk, Depends(logins)]
