from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from services.common.filters import Filters, number_literal, string_literal


def test_empty_filter_is_empty_expression() -> None:
    assert Filters().compile() == ""


def test_all_filters_compile_to_one_conjunction() -> None:
    f = Filters(
        tenant="acme",
        creator="ann",
        video_ids=["v1", "v2"],
        uploaded_after=datetime(2026, 1, 1, tzinfo=UTC),
        uploaded_before=datetime(2026, 2, 1, tzinfo=UTC),
        min_height=720,
        max_height=2160,
        min_duration_s=1.5,
        max_duration_s=60,
    )
    assert f.compile() == (
        'tenant == "acme" and creator == "ann" and video_id in ["v1", "v2"] and uploaded_at >= 1767225600 '
        "and uploaded_at < 1769904000 and height >= 720 and height <= 2160 and duration_s >= 1.5 "
        "and duration_s <= 60.0"
    )


@pytest.mark.parametrize(
    "payload",
    ['x" or 1==1 or "', "x' or '1'=='1", 'a\\" or true or \\"', '\n" or tenant != "', 'é"\u2028'],
)
def test_string_values_cannot_leave_their_literal(payload: str) -> None:
    literal = string_literal(payload)
    assert literal.startswith('"') and literal.endswith('"')
    inner = literal[1:-1]
    # every quote inside is escaped, and every backslash starts an escape: the literal never closes early
    i = 0
    while i < len(inner):
        if inner[i] == "\\":
            i += 2
            continue
        assert inner[i] != '"'
        i += 1


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), True, "1", None])
def test_numbers_must_be_finite_numbers(bad: object) -> None:
    with pytest.raises(ValueError):
        number_literal(bad)  # type: ignore[arg-type]


def test_unknown_filter_fields_and_naive_datetimes_are_rejected() -> None:
    with pytest.raises(ValidationError):
        Filters.model_validate({"creator": "a", "expr": "1==1"})
    with pytest.raises(ValidationError):
        Filters(uploaded_after=datetime(2026, 1, 1))


def test_tags_compile_to_indexed_slots_and_all_must_match() -> None:
    expr = Filters(tags=["beach", "summer"], min_width=640).compile()
    assert expr.count(" or ") == 14 and expr.count(" and ") == 2
    assert '(tag0 == "beach" or tag1 == "beach"' in expr and "width >= 640" in expr
    with pytest.raises(ValidationError):
        Filters(tags=['beach" or "1'])


@pytest.mark.parametrize("value", ["ann 😀", "日本語", "tab\there", "line\nbreak", 'q"uote\\back'])
def test_literals_use_only_escapes_milvus_reads(value: str) -> None:
    """Milvus' parser knows no \\uXXXX: characters outside ASCII stay raw, never JSON-escaped."""
    literal = string_literal(value)
    assert "\\u" not in literal
    unescaped = literal[1:-1].replace("\\n", "\n").replace("\\t", "\t").replace('\\"', '"').replace("\\\\", "\\")
    assert unescaped == value


def test_control_characters_are_refused_at_validation() -> None:
    with pytest.raises(ValidationError):
        Filters(creator="a\x01b")


def test_metadata_compiles_to_json_paths_with_typed_literals() -> None:
    f = Filters(metadata={"lang": 'en" or 1==1 or "', "season": 3, "licensed": True, "ratio": 0.5})
    assert f.compile() == (
        'metadata["lang"] == "en\\" or 1==1 or \\"" and metadata["season"] == 3 '
        'and metadata["licensed"] == true and metadata["ratio"] == 0.5'
    )


@pytest.mark.parametrize(
    "metadata",
    [
        {'a"] or 1==1 or metadata["a': "x"},  # a key is an identifier, never text spliced into a path
        {"a b": "x"},
        {"1a": "x"},
        {"a": [1]},
        {"a": None},
        {"a": float("nan")},
        {"a": "bell\x07"},
        {f"k{i}": i for i in range(9)},
    ],
)
def test_metadata_filters_refuse_what_is_not_an_identifier_and_a_scalar(metadata: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        Filters.model_validate({"metadata": metadata})
