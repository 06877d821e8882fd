"""tritonclient wrapper for the CLIP towers, used by the embedder, search and the benchmark.

Images are grouped by size and cut into batches of at most `max_batch`; up to `max_in_flight`
batches are on the wire at once over gRPC (tritonclient's async API), so Triton's dynamic batcher
always has work queued while the client encodes the next batch; HTTP, the fallback transport, sends
one at a time. With `shared_memory="system"` (client and server
on one host) pixels go through POSIX shared memory regions instead of the socket. Connection and
server-side failures surface as TransientError, so callers retry instead of losing work.
"""

from __future__ import annotations

import contextlib
import os
import queue
import uuid
from collections import defaultdict
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Any, Literal

import numpy as np
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

from services.common.errors import TransientError
from services.common.messages import ModelRef

IMAGE_MODEL = "clip_image"
TEXT_MODEL = "clip_text"
Transport = Literal["grpc", "http"]
Embedded = tuple[np.ndarray, ModelRef]


def _unavailable(detail: str) -> TransientError:
    return TransientError(detail, reason="triton_unavailable")


def parse_model_id(raw: bytes) -> ModelRef:
    name, version, dim = raw.decode().split(":")
    return ModelRef(name=name, version=version, dim=int(dim))


class _ShmSlot:
    """One system shared-memory region, registered with the server, grown when a batch outgrows it."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.name = f"clipstream-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.handle: Any = None
        self.size = 0

    def put(self, array: np.ndarray) -> None:
        import tritonclient.utils.shared_memory as shm

        if array.nbytes > self.size:
            self.close()
            self.size = max(array.nbytes, 1 << 20)
            self.handle = shm.create_shared_memory_region(self.name, f"/{self.name}", self.size)
            self.client.register_system_shared_memory(self.name, f"/{self.name}", self.size)
        shm.set_shared_memory_region(self.handle, [array])

    def close(self) -> None:
        import tritonclient.utils.shared_memory as shm

        if self.handle is not None:
            with contextlib.suppress(InferenceServerException):  # the server may be gone; the region is ours
                self.client.unregister_system_shared_memory(self.name)
            shm.destroy_shared_memory_region(self.handle)
            self.handle, self.size = None, 0


class ClipClient:
    def __init__(
        self,
        url: str,
        timeout_s: float = 60.0,
        max_batch: int = 64,
        max_in_flight: int = 4,
        transport: Transport = "grpc",
        shared_memory: Literal["none", "system"] = "none",
    ) -> None:
        self.transport = transport
        self._lib: Any = grpcclient if transport == "grpc" else httpclient
        if transport == "grpc":
            self._client: Any = grpcclient.InferenceServerClient(url=url)
        else:
            self._client = httpclient.InferenceServerClient(url=url, concurrency=max_in_flight)
        self._timeout_s = timeout_s
        self._max_batch = max_batch
        self._slots: queue.Queue[_ShmSlot | None] = queue.Queue()
        for _ in range(max_in_flight):
            self._slots.put(_ShmSlot(self._client) if shared_memory == "system" else None)

    def ready(self) -> bool:
        try:
            return bool(self._client.is_model_ready(IMAGE_MODEL) and self._client.is_model_ready(TEXT_MODEL))
        except (InferenceServerException, OSError):
            return False

    def embed_images(self, images: Sequence[np.ndarray]) -> Embedded:
        """uint8 HxWx3 arrays (any sizes) -> (N, dim) embeddings in input order."""
        if not images:
            raise ValueError("no images")
        by_shape: dict[tuple[int, ...], list[int]] = defaultdict(list)
        for i, img in enumerate(images):
            by_shape[img.shape].append(i)
        chunks = [
            indices[start : start + self._max_batch]
            for indices in by_shape.values()
            for start in range(0, len(indices), self._max_batch)
        ]
        pending = [(chunk, self._submit_images(np.stack([images[i] for i in chunk]))) for chunk in chunks]
        out: np.ndarray | None = None
        ref: ModelRef | None = None
        for chunk, wait in pending:
            emb, ref = wait()
            if out is None:
                out = np.empty((len(images), emb.shape[1]), dtype=np.float32)
            out[chunk] = emb
        assert out is not None and ref is not None
        return out, ref

    def embed_texts(self, texts: Sequence[str]) -> Embedded:
        arr = np.array([[t.encode()] for t in texts], dtype=object)
        inp = self._lib.InferInput("text", list(arr.shape), "BYTES")
        inp.set_data_from_numpy(arr)
        slot = self._slots.get()
        return self._infer(TEXT_MODEL, inp, lambda: self._slots.put(slot))()

    def _submit_images(self, batch: np.ndarray) -> Callable[[], Embedded]:
        batch = np.ascontiguousarray(batch, dtype=np.uint8)
        inp = self._lib.InferInput("pixels", list(batch.shape), "UINT8")
        slot = self._slots.get()  # blocks while max_in_flight requests are outstanding
        try:
            if slot is not None:
                slot.put(batch)
                inp.set_shared_memory(slot.name, batch.nbytes)
            else:
                inp.set_data_from_numpy(batch)
        except (InferenceServerException, OSError) as exc:
            self._slots.put(slot)
            raise _unavailable(f"Triton shared memory: {exc}") from exc
        return self._infer(IMAGE_MODEL, inp, lambda: self._slots.put(slot))

    def _infer(self, model: str, inp: Any, release: Callable[[], None]) -> Callable[[], Embedded]:
        """Send one request; returns a function that waits for its result."""
        outputs = [self._lib.InferRequestedOutput("embedding"), self._lib.InferRequestedOutput("model_id")]
        try:
            if self.transport == "http":  # plain HTTP is the fallback transport: one request at a time
                try:
                    result = _unpack(model, self._client.infer(model, [inp], outputs=outputs))
                finally:
                    release()
                return lambda: result
            future: Future[Embedded] = Future()

            def done(result: Any, error: Exception | None) -> None:
                release()
                if error is not None:
                    future.set_exception(_unavailable(f"Triton {model}: {error}"))
                    return
                try:
                    future.set_result(_unpack(model, result))
                except TransientError as exc:
                    future.set_exception(exc)

            self._client.async_infer(model, [inp], callback=done, outputs=outputs, client_timeout=self._timeout_s)
        except (InferenceServerException, OSError) as exc:
            release()
            raise _unavailable(f"Triton {model}: {exc}") from exc

        def wait() -> Embedded:
            try:
                return future.result(timeout=self._timeout_s + 5)
            except TimeoutError as exc:
                raise _unavailable(f"Triton {model}: no answer in {self._timeout_s:.0f}s") from exc

        return wait

    def close(self) -> None:
        while not self._slots.empty():
            slot = self._slots.get_nowait()
            if slot is not None:
                slot.close()
        self._client.close()


def _unpack(model: str, result: Any) -> Embedded:
    emb = result.as_numpy("embedding")
    ids = result.as_numpy("model_id")
    if emb is None or ids is None:
        raise _unavailable(f"Triton {model} returned no embedding")
    return emb.astype(np.float32, copy=False), parse_model_id(ids.reshape(-1)[0])
