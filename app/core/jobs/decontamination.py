"""Benchmark decontamination for the generation kinds: check the referenced benchmark sets,
build the index a job's engine filters with, and the job's contamination report.

Shared by `self_instruct` and `evol_instruct` (and hence by dataset builds, whose steps are
jobs of those kinds), so each kind adds one call at its check, its build and its result.

Besides the benchmark sets a job names, the evaluation tasks the trainer scores are always
checked (`decontaminate_eval_tasks`, on by default): the trainer's default tasks (the
`train` defaults' `eval_tasks`, else `seeds/default.jsonl`, which are the default seed
tasks themselves) and, for a step of a dataset build, the dataset's own frozen evaluation
tasks when it trains new versions. A generated task that reproduces one of them would be
trained on and then scored on. Their index is built per job from a few hundred items
(milliseconds); a check stays O(candidate length). Short outputs are not matched by exact
copy there (see `app.core.filters.decontaminate`): a label like "Positive" is no evidence.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlmodel import Session

from app.core import records, store
from app.core.benchmark_sets import parse_benchmark
from app.core.config import CoreConfig
from app.core.filters import decontaminate
from app.core.filters.decontaminate import BenchmarkItem, DecontaminationIndex, Indexes
from app.core.jobs.registry import JobRequest
from app.core.jobs.requests import owned_row
from app.core.jobs.results import step_origin
from app.core.methods.candidates import JobInputError
from app.core.params import BuildStepParams
from app.core.records import RecordError
from app.core.training.evaluate import default_eval_tasks_path
from app.models import BenchmarkSet, Dataset, Job

TRAIN_DEFAULTS = "train"  # the sft kind's defaults key: its `eval_tasks` is the trainer's default file


@dataclass(frozen=True)
class EvalTasks:
    """A file of evaluation tasks a job is checked against, and its name in the report."""

    label: str
    path: Path


def check_benchmark_sets(session: Session, request: JobRequest, params: Any) -> None:
    """Every benchmark set in `params.decontaminate_against` exists and is the caller's."""
    for ident in params.decontaminate_against:
        owned_row(session, BenchmarkSet, ident, request.owner, "params.decontaminate_against", "benchmark set")


def eval_task_files(session: Session, job: Job | None, params: Any, config: CoreConfig | None) -> list[EvalTasks]:
    """The evaluation tasks `job` is checked against (none when `decontaminate_eval_tasks` is off)."""
    if not getattr(params, "decontaminate_eval_tasks", False):
        return []
    found: list[EvalTasks] = []
    configured = ((config.defaults if config else {}).get(TRAIN_DEFAULTS) or {}).get("eval_tasks")
    default = Path(configured) if configured else default_eval_tasks_path()
    if default is not None:
        found.append(EvalTasks(f"eval tasks: {default.name} (the trainer's default)", default))
    # a dataset build's step: its origin is a parameter (the request's, before the job exists)
    build = params.build if isinstance(params, BuildStepParams) and params.build else step_origin(job)
    if build is not None:
        dataset = session.get(Dataset, build.dataset_id)
        path = ((dataset.training or {}).get("eval") or {}).get("path") if dataset is not None else None
        if path and dataset is not None:
            found.append(EvalTasks(f"eval tasks: dataset {dataset.name}", Path(path)))
    unique: dict[Path, EvalTasks] = {}
    for tasks in found:
        unique.setdefault(tasks.path.resolve(), tasks)
    return list(unique.values())


def eval_task_items(tasks: EvalTasks) -> list[BenchmarkItem]:
    """The file's instances as benchmark items (any seed format; the frozen files are Alpaca JSON)."""
    try:
        _, items = parse_benchmark(records.read_text(tasks.path), tasks.label, filename=tasks.path.name)
    except (OSError, RecordError) as exc:
        raise JobInputError(f"decontaminate_eval_tasks: the evaluation tasks {tasks.path} cannot be read ({exc}); "
                            "fix the file or set decontaminate_eval_tasks to false") from None
    return items


def benchmark_index(session: Session, params: Any, config: CoreConfig | None = None,
                    job: Job | None = None) -> Indexes | None:
    """The job's index over its benchmark sets' items and the evaluation tasks, or None when
    there is nothing to check."""
    # a short output (a label, a number) is never matched by exact copy, in a benchmark set
    # or the evaluation tasks: "Positive" or "72" is shared by unrelated tasks and says
    # nothing about which one was copied (short prompts still are)
    settings = {"n": params.decontaminate_n, "threshold": params.decontaminate_threshold,
                "fields": params.decontaminate_fields, "strict": params.decontaminate_strict,
                "short_exact": ("prompt",)}
    benchmarks = DecontaminationIndex(**settings)
    for ident in dict.fromkeys(params.decontaminate_against):
        try:
            benchmarks.add_many(store.benchmark_items(session, ident))
        except store.NotFound as exc:
            raise JobInputError(f"decontaminate_against: {exc}") from None
    evals = DecontaminationIndex(**settings)
    for tasks in eval_task_files(session, job, params, config):
        evals.add_many(eval_task_items(tasks))
    built = Indexes([benchmarks, evals])
    return built if len(built) else None


def checked_against(session: Session, job: Job | None, params: Any, config: CoreConfig | None) -> dict[str, Any]:
    """What a job's candidates were checked against, for its report; empty when nothing."""
    evals = [t.label for t in eval_task_files(session, job, params, config)]
    sets = list(getattr(params, "decontaminate_against", None) or [])
    return {"benchmark_sets": sets, "eval_tasks": evals} if sets or evals else {}


def contamination_report(session: Session, job_id: int, params: Any,
                         checked: dict[str, Any] | None = None) -> dict[str, Any]:
    """Items hit, by benchmark (evaluation tasks included), over every candidate the job stored."""
    return {"benchmark_sets": list(params.decontaminate_against), "eval_tasks": [],
            **(checked or {}), "n": params.decontaminate_n,
            "threshold": params.decontaminate_threshold, "strict": params.decontaminate_strict,
            **decontaminate.report(store.contamination_details(session, job_id))}
