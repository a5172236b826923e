"""The promotion gate's comparison: is a new training run not worse than the previous one?

A pure function over the trainer's metrics (`metrics.json`, `app.core.training.report`):
`eval_loss_after` (held-out loss, lower is better) and `rouge_l_after` (ROUGE-L F of
greedy answers to the evaluation tasks, higher is better). The new run passes a metric
when it is better, or worse by no more than that metric's tolerance (absolute). It is
promoted when it passes every metric both runs have; a metric the new run lacks holds it
back (nothing to compare is not "not worse"). With no previous run, it is promoted.

ROUGE-L is comparable across runs only on the same evaluation tasks; each run's held-out
loss is measured on its own version's held-out split, so its tolerance should be looser.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# metric -> +1 when higher is better, -1 when lower is better
METRICS: dict[str, int] = {"eval_loss_after": -1, "rouge_l_after": +1}
DEFAULT_TOLERANCE: dict[str, float] = {"eval_loss_after": 0.05, "rouge_l_after": 0.01}


def compare_runs(previous_metrics: Mapping[str, Any] | None, new_metrics: Mapping[str, Any],
                 tolerance: float | Mapping[str, float] = DEFAULT_TOLERANCE) -> tuple[bool, list[dict[str, Any]]]:
    """(promote, table): one table row per metric with `metric`, `previous`, `new`, `delta`
    (new - previous), `better` ("higher" or "lower"), `tolerance` and `verdict` (better,
    equal, within tolerance, worse, missing, first run)."""
    tolerances = {m: float(tolerance) for m in METRICS} if isinstance(tolerance, (int, float)) \
        else {m: float(tolerance.get(m, DEFAULT_TOLERANCE[m])) for m in METRICS}
    if any(t < 0 for t in tolerances.values()):
        raise ValueError("a tolerance cannot be negative")
    table, promote = [], True
    for metric, sign in METRICS.items():
        prev = None if previous_metrics is None else _number(previous_metrics.get(metric))
        new = _number(new_metrics.get(metric))
        row: dict[str, Any] = {"metric": metric, "previous": prev, "new": new, "delta": None,
                               "better": "higher" if sign > 0 else "lower", "tolerance": tolerances[metric]}
        if previous_metrics is None:
            row["verdict"] = "first run"
        elif new is None:
            row["verdict"], promote = "missing", False
        elif prev is None:
            row["verdict"] = "no previous value"
        else:
            row["delta"] = new - prev
            gain = sign * row["delta"]
            if gain > 0:
                row["verdict"] = "better"
            elif gain == 0:
                row["verdict"] = "equal"
            elif -gain <= tolerances[metric]:
                row["verdict"] = "within tolerance"
            else:
                row["verdict"], promote = "worse", False
        table.append(row)
    return promote, table


def _number(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if number != number else number  # NaN: nothing to compare
