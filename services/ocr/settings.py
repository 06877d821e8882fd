from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from services.common.settings import StageSettings
from services.text import sentences
from services.text.ocr import OcrLimits


class OcrSettings(StageSettings):
    model_config = SettingsConfigDict(env_prefix="CLIPSTREAM_OCR_", extra="ignore")

    group_id: str = "clipstream-ocr"
    health_port: int = 9110
    max_batch_messages: int = Field(default=8, ge=1, description="segments read and embedded together")
    max_wait_s: float = Field(default=0.2, gt=0)
    threads: int = Field(default=1, ge=1, description="onnxruntime threads of the OCR and encoder sessions")
    gpu: bool | None = Field(
        default=None,
        description="onnxruntime's CUDA provider for OCR: None uses it when onnxruntime offers it (onnxruntime-gpu)",
    )
    max_side: int = Field(default=OcrLimits.max_side, ge=64, description="longer pictures are scaled down first")
    max_boxes: int = Field(default=OcrLimits.max_boxes, ge=1, le=256, description="text regions read per picture")
    min_confidence: float = Field(default=OcrLimits.min_confidence, ge=0, le=1)
    encoder_dir: Path = Field(
        default_factory=sentences.default_folder, description="the sentence encoder, exported here on first start"
    )

    def limits(self) -> OcrLimits:
        return OcrLimits(max_side=self.max_side, max_boxes=self.max_boxes, min_confidence=self.min_confidence)
