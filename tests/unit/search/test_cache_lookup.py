"""The generation cache's lookup filter: a lookup only ever considers the caller's own entries, whatever the
tenant name holds, and the parameters that must match are each a clause of the one conjunction."""

from __future__ import annotations

from services.search.cache import DURATION_TOLERANCE_S, Generation, lookup_filter

REQUEST = Generation(prompt="one large red circle on grass", generator="veo-3", duration_s=4.0, seed=7)


def _clauses(expr: str) -> list[str]:
    """The top-level conjuncts (the only parenthesised clause, the expiry, holds an `or`, never an `and`)."""
    return expr.split(" and ")


def test_a_lookup_considers_only_the_callers_entries() -> None:
    now = 1_796_623_197_938  # one instant for both: only the tenant may differ
    mine, theirs = _clauses(lookup_filter("acme", REQUEST, now)), _clauses(lookup_filter("globex", REQUEST, now))
    assert 'tenant == "acme"' in mine and 'tenant == "globex"' in theirs
    assert [c for c in mine if c.startswith("tenant")] == ['tenant == "acme"']  # one tenant clause, not in an `or`
    assert set(mine) ^ set(theirs) == {'tenant == "acme"', 'tenant == "globex"'}  # the tenant is all that differs


def test_a_hostile_tenant_name_stays_one_literal() -> None:
    clauses = _clauses(lookup_filter('x" or tenant != "', REQUEST))
    assert clauses[0] == 'tenant == "x\\" or tenant != \\""'


def test_the_parameters_that_must_match_are_clauses() -> None:
    clauses = _clauses(lookup_filter("acme", REQUEST))
    assert {'generator == "veo-3"', 'aspect_ratio == "16:9"', "seed == 7"} <= set(clauses)
    assert f"duration_s >= {4.0 - DURATION_TOLERANCE_S!r}" in clauses
    assert f"duration_s <= {4.0 + DURATION_TOLERANCE_S!r}" in clauses
    assert not any(
        c.startswith("seed") for c in _clauses(lookup_filter("acme", REQUEST.model_copy(update={"seed": None})))
    )
