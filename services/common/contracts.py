"""JSON Schemas of the topic models, as committed in `schemas/`, and the compatibility rules between versions.

A schema change is allowed when old messages still validate under the new model (no new required
field, no changed type) and new messages still satisfy old readers (no removed required field).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from services.common.messages import TOPIC_MODELS


def schema_file(topic: str) -> str:
    return f"{topic}.v{TOPIC_MODELS[topic].model_fields['schema_version'].default}.json"


def current_schemas() -> dict[str, dict[str, Any]]:
    return {schema_file(topic): model.model_json_schema() for topic, model in TOPIC_MODELS.items()}


def write_schemas(folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, schema in current_schemas().items():
        path = folder / name
        path.write_text(json.dumps(schema, indent=2, sort_keys=True) + "\n")
        written.append(path)
    return written


def _resolve(schema: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    ref = node.get("$ref")
    if ref and ref.startswith("#/$defs/"):
        return dict(schema["$defs"][ref.removeprefix("#/$defs/")])
    return node


def _type_of(schema: dict[str, Any], node: dict[str, Any]) -> Any:
    node = _resolve(schema, node)
    if "anyOf" in node:
        return sorted(json.dumps(_type_of(schema, n), sort_keys=True) for n in node["anyOf"])
    if node.get("type") == "array":
        return ["array", _type_of(schema, node.get("items", {}))]
    if node.get("type") == "object" and "properties" in node:
        return {k: _type_of(schema, v) for k, v in sorted(node["properties"].items())}
    return node.get("type", node.get("const", "any"))


def compatibility_problems(old: dict[str, Any], new: dict[str, Any], path: str = "") -> list[str]:
    problems: list[str] = []
    old_props, new_props = old.get("properties", {}), new.get("properties", {})
    old_req, new_req = set(old.get("required", [])), set(new.get("required", []))
    for field in sorted(new_req - old_req):
        problems.append(f"{path}{field}: newly required (old messages lack it)")
    for field in sorted(old_req - set(new_props)):
        problems.append(f"{path}{field}: required field removed (old readers need it)")
    for field in sorted(set(old_props) & set(new_props)):
        before, after = _resolve(old, old_props[field]), _resolve(new, new_props[field])
        if before.get("type") == after.get("type") == "array":  # a list of objects: compare the objects
            items_before, items_after = _resolve(old, before.get("items", {})), _resolve(new, after.get("items", {}))
            if "properties" in items_before and "properties" in items_after:
                before, after = items_before, items_after
        if "properties" in before and "properties" in after:
            nested_old = {**before, "$defs": old.get("$defs", {})}
            nested_new = {**after, "$defs": new.get("$defs", {})}
            problems.extend(compatibility_problems(nested_old, nested_new, f"{path}{field}."))
        elif _type_of(old, before) != _type_of(new, after):
            problems.append(f"{path}{field}: type changed")
    return problems
