"""The promotion gate's comparison: better or within tolerance promotes, worse holds."""

from __future__ import annotations

import pytest

from app.core.handoff.gate import compare_runs

PREVIOUS = {"eval_loss_after": 1.00, "rouge_l_after": 0.40, "train_seconds": 12.0}


def _verdicts(table):
    return {row["metric"]: row["verdict"] for row in table}


def test_a_better_run_is_promoted():
    promote, table = compare_runs(PREVIOUS, {"eval_loss_after": 0.90, "rouge_l_after": 0.45})
    assert promote and _verdicts(table) == {"eval_loss_after": "better", "rouge_l_after": "better"}
    loss = table[0]
    assert loss["previous"] == 1.0 and loss["new"] == 0.9 and loss["better"] == "lower"
    assert loss["delta"] == pytest.approx(-0.1)


def test_a_worse_run_is_held_on_either_metric():
    promote, table = compare_runs(PREVIOUS, {"eval_loss_after": 1.20, "rouge_l_after": 0.45})
    assert not promote and _verdicts(table)["eval_loss_after"] == "worse"
    promote, table = compare_runs(PREVIOUS, {"eval_loss_after": 0.90, "rouge_l_after": 0.30})
    assert not promote and _verdicts(table) == {"eval_loss_after": "better", "rouge_l_after": "worse"}


def test_within_tolerance_is_not_worse():
    new = {"eval_loss_after": 1.04, "rouge_l_after": 0.395}
    promote, table = compare_runs(PREVIOUS, new, {"eval_loss_after": 0.05, "rouge_l_after": 0.01})
    assert promote and set(_verdicts(table).values()) == {"within tolerance"}
    assert not compare_runs(PREVIOUS, new, 0.0)[0]  # one number: the same tolerance for every metric
    assert compare_runs(PREVIOUS, dict(PREVIOUS), 0.0)[0]  # equal is not worse


def test_the_first_run_is_promoted_and_a_missing_metric_holds():
    promote, table = compare_runs(None, {"eval_loss_after": 2.0, "rouge_l_after": None})
    assert promote and set(_verdicts(table).values()) == {"first run"}
    promote, table = compare_runs(PREVIOUS, {"eval_loss_after": 0.5, "rouge_l_after": None})
    assert not promote and _verdicts(table)["rouge_l_after"] == "missing"
    promote, table = compare_runs({"eval_loss_after": None}, {"eval_loss_after": 0.5, "rouge_l_after": 0.1})
    assert promote and _verdicts(table) == {"eval_loss_after": "no previous value", "rouge_l_after": "no previous value"}
    assert not compare_runs(PREVIOUS, {"eval_loss_after": float("nan"), "rouge_l_after": 0.5})[0]


def test_a_negative_tolerance_is_refused():
    with pytest.raises(ValueError, match="negative"):
        compare_runs(PREVIOUS, PREVIOUS, -0.1)
