"""Dead-letter reasons are listed once (`services/common/reasons.py`): every reason the stages' code raises or
writes is in the list, and nothing listed is no longer raised."""

from __future__ import annotations

import re
from pathlib import Path

from services.common.reasons import DEAD_LETTER_REASONS

SERVICES = Path(__file__).resolve().parents[3] / "services"
# the code that runs inside a stage (HTTP-only answers such as `bad_cursor` never reach a dead letter)
STAGE_CODE = [
    "common/errors.py",
    "common/kafka",
    "common/vectors",
    "common/triton.py",
    "media",
    "clip",
    "quality",
    "decoder",
    "embedder",
    "indexer",
    "enricher",
    "qc",
    "duplicates",
    "webhooks",
    "gateway/notifications.py",
    "intake/registration.py",
]
# where a reason is named as a literal: a DecodeError's first argument, `reason=`, a class's `reason = `,
# a Rejected / DeadLetter.of / webhook give-up argument, a permanent webhook verdict, an error's second argument
RAISED = [
    r'(?:DecodeError|SourceUnavailable)\(\s*"([a-z_]+)"',
    r'\breason(?::\s*str)?\s*=\s*"([a-z_]+)"',
    r'\breason\s*=\s*[^\n]*\belse\s+"([a-z_]+)"',
    r'\bRejected\([^,()]+,\s*"([a-z_]+)"',
    r'\bDeadLetter\.of\(\s*[^,()]+,\s*"([a-z_]+)"',
    r'\bVerdict\("permanent",\s*"([a-z_]+)"',
    r'\b_give_up\(\s*[^,()]+,\s*"([a-z_]+)"',
    r'\b(?!DecodeError|SourceUnavailable)\w+Error\(\s*f?"[^"]*",\s*"([a-z_]+)"\)',
]


def _sources() -> list[Path]:
    paths: list[Path] = []
    for part in STAGE_CODE:
        path = SERVICES / part
        assert path.exists(), f"{part} moved: update STAGE_CODE"
        paths += [path] if path.is_file() else sorted(path.rglob("*.py"))
    return paths


def raised_reasons(text: str) -> set[str]:
    return {m.group(1) for pattern in RAISED for m in re.finditer(pattern, text)}


def test_the_scan_sees_each_way_a_reason_is_named() -> None:
    code = """
        raise DecodeError(
            "too_long", "over the limit")
        raise PermanentError(f"no {x}", reason="unknown_collection")
        class Unreadable(PermanentError):
            reason = "malformed_notification"
        results.append(Rejected(received.raw, "bad_keyframe", f"{exc}"))
        DeadLetter.of(SERVICE, "malformed_message", str(exc), source, key, value)
        return Verdict("permanent", "receiver_gone")
        self._give_up(delivery, "endpoint_backlog_full", "...")
        reason = verdict.reason if verdict.result == "permanent" else "retries_exhausted"
        raise QualityError("empty prompt", "empty_prompt")
        def __init__(self, detail: str, reason: str = "bad_qc_input") -> None:
    """
    assert raised_reasons(code) == {
        "too_long",
        "unknown_collection",
        "malformed_notification",
        "bad_keyframe",
        "malformed_message",
        "receiver_gone",
        "endpoint_backlog_full",
        "retries_exhausted",
        "empty_prompt",
        "bad_qc_input",
    }


def test_every_reason_the_stages_raise_is_listed_and_every_listed_one_is_raised() -> None:
    raised: dict[str, set[str]] = {}
    for path in _sources():
        for reason in raised_reasons(path.read_text()):
            raised.setdefault(reason, set()).add(str(path.relative_to(SERVICES)))
    unlisted = {reason: sorted(where) for reason, where in raised.items() if reason not in DEAD_LETTER_REASONS}
    assert unlisted == {}, "add these to services/common/reasons.py with their meaning"
    assert sorted(set(DEAD_LETTER_REASONS) - set(raised)) == [], "nothing raises these any more"


def test_each_reason_is_a_machine_readable_name_with_a_meaning() -> None:
    for reason, meaning in DEAD_LETTER_REASONS.items():
        assert re.fullmatch(r"[a-z][a-z_]*", reason) and meaning.strip(), reason


def test_the_readme_names_only_listed_reasons() -> None:
    readme = (SERVICES.parent / "README.md").read_text()
    bullet = readme[readme.index("- **Limits and bad input**") :]
    bullet = bullet[: bullet.index("\n- ")]
    named = set(re.findall(r"`([a-z][a-z_]+)`", bullet)) - {"reason"}
    assert "corrupt_video" in named and "services/common/reasons.py" in bullet
    assert sorted(named - set(DEAD_LETTER_REASONS)) == []
