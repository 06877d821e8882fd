"""CLIP image tower for Triton's Python backend; the implementation lives in services.common.clip.serving."""

from services.common.clip.serving import ImageModel as TritonPythonModel

__all__ = ["TritonPythonModel"]
