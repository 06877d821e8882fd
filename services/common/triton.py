"""tritonclient wrapper for the CLIP towers, used by the embedder and by search.

Images of equal size go in one request; Triton's dynamic batcher merges concurrent requests further.
Connection and server-side failures surface as TransientError so callers retry instead of losing work.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import numpy as np
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

from services.common.kafka.processor import TransientError
from services.common.messages import ModelRef

IMAGE_MODEL = "clip_image"
TEXT_MODEL = "clip_text"


def parse_model_id(raw: bytes) -> ModelRef:
    name, version, dim = raw.decode().split(":")
    return ModelRef(name=name, version=version, dim=int(dim))


class ClipClient:
    def __init__(self, url: str, timeout_s: float = 60.0, max_batch: int = 64) -> None:
        self._client = grpcclient.InferenceServerClient(url=url)
        self._timeout_s = timeout_s
        self._max_batch = max_batch

    def ready(self) -> bool:
        try:
            return bool(self._client.is_model_ready(IMAGE_MODEL) and self._client.is_model_ready(TEXT_MODEL))
        except InferenceServerException:
            return False

    def embed_images(self, images: Sequence[np.ndarray]) -> tuple[np.ndarray, ModelRef]:
        """uint8 HxWx3 arrays (any sizes) -> (N, dim) embeddings in input order."""
        if not images:
            raise ValueError("no images")
        by_shape: dict[tuple[int, ...], list[int]] = defaultdict(list)
        for i, img in enumerate(images):
            by_shape[img.shape].append(i)
        out: np.ndarray | None = None
        ref: ModelRef | None = None
        for indices in by_shape.values():
            for start in range(0, len(indices), self._max_batch):
                chunk = indices[start : start + self._max_batch]
                batch = np.stack([images[i] for i in chunk]).astype(np.uint8, copy=False)
                inp = grpcclient.InferInput("pixels", list(batch.shape), "UINT8")
                inp.set_data_from_numpy(batch)
                emb, ref = self._infer(IMAGE_MODEL, inp)
                if out is None:
                    out = np.empty((len(images), emb.shape[1]), dtype=np.float32)
                out[chunk] = emb
        assert out is not None and ref is not None
        return out, ref

    def embed_texts(self, texts: Sequence[str]) -> tuple[np.ndarray, ModelRef]:
        arr = np.array([[t.encode()] for t in texts], dtype=object)
        inp = grpcclient.InferInput("text", list(arr.shape), "BYTES")
        inp.set_data_from_numpy(arr)
        return self._infer(TEXT_MODEL, inp)

    def _infer(self, model: str, inp: grpcclient.InferInput) -> tuple[np.ndarray, ModelRef]:
        outputs = [grpcclient.InferRequestedOutput("embedding"), grpcclient.InferRequestedOutput("model_id")]
        try:
            result = self._client.infer(model, [inp], outputs=outputs, client_timeout=self._timeout_s)
        except InferenceServerException as exc:
            raise TransientError(f"Triton {model}: {exc}") from exc
        emb = result.as_numpy("embedding")
        ids = result.as_numpy("model_id")
        if emb is None or ids is None:
            raise TransientError(f"Triton {model} returned no embedding")
        return emb.astype(np.float32, copy=False), parse_model_id(ids.reshape(-1)[0])

    def close(self) -> None:
        self._client.close()
