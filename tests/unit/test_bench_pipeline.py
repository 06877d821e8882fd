"""bench.pipeline's headline is the pipeline as deployed, and the goal (>= 0.8x the monolith) is judged on it:
the run with the other consumers paused is a breakdown, never the figure a reader takes away."""

from bench.pipeline import report


def test_the_deployed_ratio_leads_and_is_the_one_judged() -> None:
    # the run: 0.76x as deployed, 0.99x with the other consumers paused
    lines = report(26, 270.6, 2, deployed_s=6.3, ingest_only_s=4.85, monolith_s=4.8)
    assert lines[0] == "pipeline / monolith, as deployed (whole stack working): 0.76x (goal >= 0.8x: NOT met)"
    (paused,) = [line for line in lines if "0.99x" in line]
    assert paused.startswith("breakdown: ingest stages only")
    at_goal = report(26, 270.6, 2, deployed_s=5.0, ingest_only_s=4.0, monolith_s=4.0)[0]
    assert at_goal.endswith(": 0.80x (goal >= 0.8x: met)")
