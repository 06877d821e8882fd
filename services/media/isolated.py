"""Decoding in a child process, so that no input can hang, crash or exhaust the service that asked.

FFmpeg runs C code on hostile bytes: a stuck demuxer or a network read never returns to Python, a
malformed stream can crash the process, a decode bomb can take all memory. The child gets an address-space
limit and the caller a hard deadline; when either is hit the child is killed, the caller gets a precise
`DecodeError`, and the next video gets a fresh child. The worker is kept between videos (spawned once).
A child that dies is a transient failure: a crash that hostile bytes cause again is dead-lettered after
the bounded retries, with each attempt in its history.
"""

from __future__ import annotations

import concurrent.futures as cf
import logging
import multiprocessing
import resource
import signal
from concurrent.futures.process import BrokenProcessPool

from services.common.errors import TransientError
from services.media.decode import DecodedVideo, DecodeOptions, decode_video
from services.media.errors import DecodeError
from services.media.sources import SourcePolicy, open_source

log = logging.getLogger(__name__)


def _init_child(max_bytes: int) -> None:
    # the parent owns the child's life: a SIGTERM sent to the whole process group (a supervisor stopping the
    # service) must let the parent finish or hand back its batch, not kill the decode under it
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if max_bytes > 0:
        resource.setrlimit(resource.RLIMIT_AS, (max_bytes, max_bytes))


def _decode_uri(uri: str, policy: SourcePolicy, options: DecodeOptions) -> DecodedVideo:
    try:
        with open_source(uri, policy) as source:
            return decode_video(source, options)
    except MemoryError as exc:
        raise DecodeError("too_much_memory", "decoding needed more memory than the decoder's limit") from exc


class IsolatedDecoder:
    def __init__(self, policy: SourcePolicy, options: DecodeOptions, max_memory_bytes: int, grace_s: float = 30.0):
        self.policy, self.options = policy, options
        self.max_memory_bytes = max_memory_bytes
        # the budget is checked between frames inside the child; the deadline here catches what never returns
        self.deadline_s = options.limits.time_budget_s + grace_s
        self._pool: cf.ProcessPoolExecutor | None = None

    def _workers(self) -> cf.ProcessPoolExecutor:
        if self._pool is None:
            self._pool = cf.ProcessPoolExecutor(
                max_workers=1,
                mp_context=multiprocessing.get_context("spawn"),  # never fork a process holding Kafka threads
                initializer=_init_child,
                initargs=(self.max_memory_bytes,),
            )
        return self._pool

    def decode(self, uri: str) -> DecodedVideo:
        future = self._workers().submit(_decode_uri, uri, self.policy, self.options)
        try:
            return future.result(timeout=self.deadline_s)
        except cf.TimeoutError as exc:
            self._kill()
            raise DecodeError(
                "decode_timeout", f"no result within {self.deadline_s:.0f}s: the decode was killed"
            ) from exc
        except BrokenProcessPool as exc:
            self._kill()
            # a crash on hostile bytes repeats and ends as a dead letter after the bounded retries; a child
            # killed from outside (the OOM killer under pressure, an operator) gets another chance
            raise TransientError(
                "the decoding process died (crash, memory or a signal)", reason="decoder_crashed"
            ) from exc

    def _kill(self) -> None:
        pool, self._pool = self._pool, None
        if pool is None:
            return
        for proc in list(getattr(pool, "_processes", {}).values()):  # no public way to kill a stuck worker
            proc.kill()
        pool.shutdown(wait=False, cancel_futures=True)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
