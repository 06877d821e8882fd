"""CLIP text tower for Triton's Python backend; the implementation lives in services.clip.serving."""

from services.clip.serving import TextModel as TritonPythonModel

__all__ = ["TritonPythonModel"]
