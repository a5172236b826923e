"""Benchmark decontamination for the generation kinds: check the referenced benchmark sets,
build the index a job's engine filters with, and the job's contamination report.

Shared by `self_instruct` and `evol_instruct` (and hence by dataset builds, whose steps are
jobs of those kinds), so each kind adds one call at its check, its build and its result.
"""

from __future__ import annotations

from typing import Any

from sqlmodel import Session

from app.core import store
from app.core.candidates import JobInputError
from app.core.filters import decontaminate
from app.core.filters.decontaminate import DecontaminationIndex
from app.core.jobs.registry import JobRequest
from app.core.jobs.requests import owned_row
from app.models import BenchmarkSet


def check_benchmark_sets(session: Session, request: JobRequest, params: Any) -> None:
    """Every benchmark set in `params.decontaminate_against` exists and is the caller's."""
    for ident in params.decontaminate_against:
        owned_row(session, BenchmarkSet, ident, request.owner, "params.decontaminate_against", "benchmark set")


def benchmark_index(session: Session, params: Any) -> DecontaminationIndex | None:
    """The job's index over its benchmark sets' items, or None when it names none."""
    if not params.decontaminate_against:
        return None
    built = DecontaminationIndex(n=params.decontaminate_n, threshold=params.decontaminate_threshold,
                                 fields=params.decontaminate_fields, strict=params.decontaminate_strict)
    for ident in dict.fromkeys(params.decontaminate_against):
        try:
            built.add_many(store.benchmark_items(session, ident))
        except store.NotFound as exc:
            raise JobInputError(f"decontaminate_against: {exc}") from None
    return built


def contamination_report(session: Session, job_id: int, params: Any) -> dict[str, Any]:
    """Items hit, by benchmark, over every candidate the job stored."""
    return {"benchmark_sets": list(params.decontaminate_against), "n": params.decontaminate_n,
            "threshold": params.decontaminate_threshold, "strict": params.decontaminate_strict,
            **decontaminate.report(store.contamination_details(session, job_id))}
