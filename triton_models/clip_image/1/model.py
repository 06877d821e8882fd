"""CLIP image tower for Triton's Python backend; the implementation lives in services.clip.serving."""

from services.clip.serving import ImageModel as TritonPythonModel

__all__ = ["TritonPythonModel"]
