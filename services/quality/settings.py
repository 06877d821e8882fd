from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.clip.thresholds import Thresholds
from services.quality.checks import QcConfig


class QualitySettings(BaseSettings):
    """How videos are checked, the same for the QC stage and the search API's on-demand QC (both read
    `CLIPSTREAM_QC_*`). Thresholds default to the model's own (see `checks.py`)."""

    model_config = SettingsConfigDict(env_prefix="CLIPSTREAM_QC_", extra="ignore")

    alignment_threshold: float | None = Field(
        default=None, ge=-1, le=1, description="segment↔prompt cosine floor; default: the model's `text_match`"
    )
    default_alignment: float = Field(default=0.2, ge=-1, le=1, description="when the model has no `text_match`")
    jump_threshold: float | None = Field(
        default=None, ge=-1, le=1, description="adjacent segments' cosine floor; default: the model's `duplicate`"
    )
    default_jump: float = Field(default=0.8, ge=-1, le=1, description="when the model has no `duplicate`")
    style_z: float = Field(default=4.0, gt=0, description="segment distance to the references, in their spreads")
    min_spread: float = Field(default=0.02, gt=0, description="floor of the references' spread (1 - cosine)")
    character_drop: float = Field(
        default=0.05, gt=0, le=2, description="a shot's face this far below the video's best-matching shot drifted"
    )
    character_floor: float = Field(default=0.5, ge=-1, le=1, description="any shot's face below this cosine drifted")
    max_references: int = Field(default=8, ge=1, le=64)
    max_reference_bytes: int = Field(default=10 * 1024**2, ge=1024, description="one reference image")
    max_prompt_chars: int = Field(default=1000, ge=1)
    max_segments: int = Field(default=512, ge=1, description="segments of one video checked (its first ones)")
    outlier_z: float = Field(default=3.5, gt=0, description="robust z above which a cohort member is an outlier")
    outlier_min_mad: float = Field(
        default=0.01, gt=0, description="floor of the cohort's median absolute deviation of distances"
    )
    min_cohort: int = Field(default=5, ge=3)
    max_cohort: int = Field(default=10_000, ge=5, description="videos read for one outlier query")

    def config(self, thresholds: Thresholds, max_segment_s: float, cuts_allowed: bool = False) -> QcConfig:
        alignment = self.alignment_threshold
        if alignment is None:
            alignment = thresholds.text_match if thresholds.text_match is not None else self.default_alignment
        jump = self.jump_threshold
        if jump is None:
            jump = thresholds.duplicate if thresholds.duplicate is not None else self.default_jump
        return QcConfig(
            alignment_threshold=alignment,
            jump_threshold=jump,
            style_z=self.style_z,
            min_spread=self.min_spread,
            cuts_allowed=cuts_allowed,
            max_segment_s=max_segment_s,
            character_drop=self.character_drop,
            character_floor=self.character_floor,
        )
