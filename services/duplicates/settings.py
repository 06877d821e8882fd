from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from services.clip.thresholds import ThresholdBook
from services.common.messages import ModelRef
from services.common.settings import StageSettings
from services.duplicates.evidence import EvidenceConfig, Mode
from services.duplicates.match import MatchConfig


class DuplicatesSettings(StageSettings):
    model_config = SettingsConfigDict(env_prefix="CLIPSTREAM_DUPLICATES_", extra="ignore")

    group_id: str = "clipstream-duplicates"
    health_port: int = 9107
    max_batch_messages: int = Field(default=16, ge=1)
    max_wait_s: float = Field(default=0.2, gt=0)
    segment_threshold: float | None = Field(
        default=None, gt=0, le=1, description="segment cosine override; default: the model's calibrated `duplicate`"
    )
    default_threshold: float = Field(default=0.95, gt=0, le=1, description="when the model has no calibrated one")
    evidence: Mode = Field(
        default="fused",
        description="what makes two segments alike: the model's cosine, the frames' perceptual hashes, or both",
    )
    match_bits: int = Field(default=8, ge=0, le=32, description="frames this many hash bits apart (of 64) match")
    veto_bits: int = Field(
        default=10, ge=0, le=64, description="fused: the model's match is refused when no frames are this close"
    )
    min_frame_share: float = Field(default=0.25, gt=0, le=1, description="of a segment's frames that must match")
    min_detail: float = Field(default=1.5, ge=0, description="thumbnail luma std below this: a blank segment")
    min_segment_s: float = Field(default=0.75, ge=0)
    min_run: int = Field(default=2, ge=1)
    min_matched_s: float = Field(default=1.5, ge=0)
    duplicate_coverage: float = Field(default=0.6, gt=0, le=1)
    contained_coverage: float = Field(default=0.8, gt=0, le=1)
    bookend_s: float = Field(
        default=10.0, ge=0, description="a shared opening/closing run up to this long is an intro/outro, not a copy"
    )
    neighbours: int = Field(default=64, ge=1, le=1024, description="nearest segments looked at per segment")
    max_candidates: int = Field(
        default=32, ge=1, le=1024, description="nearest videos whose frames are compared (fused, fingerprints)"
    )
    max_print_queries: int = Field(
        default=64, ge=1, le=4096, description="frames of a video looked up in the fingerprint index (evenly spread)"
    )
    print_neighbours: int = Field(default=8, ge=1, le=1024, description="nearest indexed hashes per frame hash")
    max_segments: int = Field(default=512, ge=1, description="segments of one video compared (its first ones)")

    def threshold_for(self, model: ModelRef, *specs: str, book: ThresholdBook | None = None) -> float:
        """The override, else the model's calibrated `duplicate` threshold, else the default. Pass the
        caller's `book` to keep its cache (it re-reads the file only when it changes)."""
        if self.segment_threshold is not None:
            return self.segment_threshold
        book = book or ThresholdBook(self.common.thresholds_path)
        found = book.get(model, *specs, self.common.resolved_clip_model()).duplicate
        return found if found is not None else self.default_threshold

    def evidence_config(self, threshold: float) -> EvidenceConfig:
        return EvidenceConfig(
            clip_threshold=threshold,
            mode=self.evidence,
            match_bits=self.match_bits,
            min_share=self.min_frame_share,
            veto_bits=self.veto_bits,
        )

    def match_config(self) -> MatchConfig:
        return MatchConfig(
            min_segment_s=self.min_segment_s,
            min_run=self.min_run,
            min_matched_s=self.min_matched_s,
            duplicate_coverage=self.duplicate_coverage,
            contained_coverage=self.contained_coverage,
            bookend_s=self.bookend_s,
        )
