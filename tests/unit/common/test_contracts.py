import copy
import json
from pathlib import Path
from typing import Any

import pytest

from services.common.contracts import compatibility_problems, current_schemas, schema_file
from services.common.messages import TOPIC_MODELS, VideoSegment

SCHEMAS = Path(__file__).resolve().parents[3] / "schemas"


@pytest.mark.parametrize("name", sorted(current_schemas()))
def test_committed_schema_matches_model(name: str) -> None:
    committed = json.loads((SCHEMAS / name).read_text())
    assert committed == current_schemas()[name], f"{name} drifted: run `clipstream schemas` and review the diff"


RELEASED = SCHEMAS / "released"


@pytest.mark.parametrize("name", sorted(set(current_schemas()) | {p.name for p in RELEASED.glob("*.json")}))
def test_model_is_compatible_with_the_released_schema(name: str) -> None:
    """Against the schema as released, which `clipstream schemas` never rewrites: a breaking change fails
    here even after the committed file was regenerated to satisfy the drift test. One case per topic in use
    (from `TOPIC_MODELS`), so a topic whose schema was never released fails rather than going unchecked."""
    assert (RELEASED / name).exists(), f"{name} is in use but was never released: copy it into {RELEASED}"
    released = json.loads((RELEASED / name).read_text())
    assert name in current_schemas(), f"{name} was released: its topic and version must stay readable"
    assert compatibility_problems(released, current_schemas()[name]) == []


def test_every_topic_in_use_has_its_released_schema_and_nothing_released_is_dropped() -> None:
    assert {p.name for p in RELEASED.glob("*.json")} == set(current_schemas())
    assert {schema_file(topic) for topic in TOPIC_MODELS} == set(current_schemas())


def test_every_topic_has_a_committed_schema() -> None:
    assert {p.name for p in SCHEMAS.glob("*.json")} == set(current_schemas())
    assert len(TOPIC_MODELS) == len(current_schemas())


def _segment_schema() -> dict:
    return VideoSegment.model_json_schema()


def test_new_required_field_is_incompatible() -> None:
    old = _segment_schema()
    new = copy.deepcopy(old)
    new["properties"]["shot_score"] = {"type": "number"}
    new["required"].append("shot_score")
    assert compatibility_problems(old, new) == ["shot_score: newly required (old messages lack it)"]


def test_new_optional_field_is_compatible() -> None:
    old = _segment_schema()
    new = copy.deepcopy(old)
    new["properties"]["shot_score"] = {"type": "number", "default": 0}
    assert compatibility_problems(old, new) == []


def test_type_change_and_removal_are_incompatible() -> None:
    old = _segment_schema()
    new = copy.deepcopy(old)
    new["properties"]["start_s"] = {"type": "string"}
    del new["properties"]["end_s"]
    new["required"].remove("end_s")
    problems = compatibility_problems(old, new)
    assert "start_s: type changed" in problems
    assert "end_s: required field removed (old readers need it)" in problems


def test_nested_model_change_is_seen() -> None:
    old = _segment_schema()
    new = copy.deepcopy(old)
    new["$defs"]["VideoInfo"]["properties"]["width"] = {"type": "string"}
    assert compatibility_problems(old, new) == ["video.width: type changed"]


def test_a_new_optional_field_in_a_list_of_objects_is_compatible_and_a_new_required_one_is_not() -> None:
    old: dict[str, Any] = {
        "properties": {"rows": {"type": "array", "items": {"$ref": "#/$defs/Row"}}},
        "$defs": {"Row": {"properties": {"a": {"type": "number"}}, "required": ["a"]}},
    }
    optional = copy.deepcopy(old)
    optional["$defs"]["Row"]["properties"]["b"] = {"type": "number", "default": 0}
    assert compatibility_problems(old, optional) == []
    required = copy.deepcopy(optional)
    required["$defs"]["Row"]["required"].append("b")
    assert compatibility_problems(old, required) == ["rows.b: newly required (old messages lack it)"]
    retyped = copy.deepcopy(old)
    retyped["$defs"]["Row"]["properties"]["a"] = {"type": "string"}
    assert compatibility_problems(old, retyped) == ["rows.a: type changed"]
