"""CLIP text tower for Triton's Python backend; the implementation lives in services.common.clip.serving."""

from services.common.clip.serving import TextModel as TritonPythonModel

__all__ = ["TritonPythonModel"]
