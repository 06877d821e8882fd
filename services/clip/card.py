"""What a model folder says about itself (`clipstream.json`): name, how it was made, what it knows."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

CARD_FILE = "clipstream.json"


class ModelCard(BaseModel):
    name: str = ""
    random_weights: bool = False
    toy_world: bool = False
    knows: str = ""
    thresholds: dict[str, float] = Field(default_factory=dict, description="measured by whoever made the model")
    report: dict[str, Any] = Field(default_factory=dict)

    @classmethod
    def read(cls, spec: str | Path) -> ModelCard:
        """The card of a model folder; an empty card for anything else (a real checkpoint has none)."""
        path = Path(spec) / CARD_FILE if spec else None
        if path is None or not path.is_file():
            return cls(name=Path(str(spec)).name)
        return cls.model_validate(json.loads(path.read_text()), strict=False)
