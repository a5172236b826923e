"""`sprout generate`: run a generation job (Self-Instruct or Evol-Instruct) in this process, with a progress bar."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer
from pydantic import ValidationError
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from app.cli.common import CliError, console, database_url, describe_validation_error, load_settings
from app.cli.export import export_job
from app.cli.judge_summary import judge_rows, score_table
from app.core import jobs, lineage, store
from app.core.jobs import lifecycle, requests
from app.core.jobs.evol_instruct import source_pool
from app.core.jobs.generation import GenerationResult
from app.core.jobs.results import Counters, read_result
from app.core.seeds import SeedFormatError, load_seed_file
from app.db import session_scope

DEFAULT_SEEDS = Path(__file__).resolve().parents[2] / "seeds" / "default.jsonl"


def parse_overrides(pairs: list[str]) -> dict[str, Any]:
    """`--param key=value` pairs; values are JSON when they parse as JSON, else strings."""
    import json

    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise CliError(f"--param expects key=value, got {pair!r}")
        try:
            out[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            out[key.strip()] = value
    return out


def _progress_line(counters: dict[str, Any]) -> str:
    counted = Counters.model_validate(counters)
    if "judged" in counters and ("generated" not in counters or counted.judge):  # the judge at work
        means = ", ".join(f"{k.removeprefix('mean_')} {v:.2f}" for k, v in counters.items()
                          if k.startswith("mean_") and isinstance(v, (int, float)))
        return f"judged {counted.judged} · unparseable {counted.judge_unparseable}" + (
            f" · mean {means}" if means else "")
    if "generated" not in counters:  # not a generation job: its stage, step and loss
        return " · ".join(f"{k} {v}" for k, v in counters.items() if k in ("stage", "loss") and v is not None)
    top = sorted(counted.rejected.items(), key=lambda kv: -kv[1])[:4]
    parts = ", ".join(f"{rule} {n}" for rule, n in top) or "none"
    return f"generated {counted.generated} · rejected: {parts}"


def summary_table(job) -> Table:
    if job.kind == "score":
        return score_table(job)
    c = job.counters
    table = Table(title=f"job {job.id} ({job.kind}): {job.status}", show_header=False)
    table.add_column("what", style="bold")
    table.add_column("value", justify="right")
    table.add_row("candidates generated", str(c.get("generated", 0)))
    table.add_row("accepted (curated)", str(c.get("accepted", 0)))
    for rule, n in sorted(c.get("rejected", {}).items(), key=lambda kv: -kv[1]):
        table.add_row(f"  rejected: {rule}", str(n))
    table.add_row("instances kept", str(c.get("instances", 0)))
    for rule, n in sorted(c.get("instances_rejected", {}).items(), key=lambda kv: -kv[1]):
        table.add_row(f"  instances rejected: {rule}", str(n))
    for op, fates in sorted(c.get("operations", {}).items()):
        table.add_row(f"  operation {op}", f"{fates.get('accepted', 0)} kept / {fates.get('rejected', 0)} failed")
    table.add_row("LLM requests (errors)", f"{c.get('llm_requests', 0)} ({c.get('llm_errors', 0)})")
    table.add_row("tokens (prompt / completion)", f"{c.get('prompt_tokens', 0)} / {c.get('completion_tokens', 0)}")
    for role, used in sorted((c.get("roles") or {}).items()):
        priced = used.get("cost") is not None
        table.add_row(f"  {role} ({used.get('dialect', '?')}): steps (errors), tokens" + (", cost" if priced else ""),
                      f"{used.get('llm_requests', 0)} ({used.get('llm_errors', 0)}), "
                      f"{used.get('prompt_tokens', 0)} / {used.get('completion_tokens', 0)}"
                      + (f", {used['cost']:.4f}" if priced else ""))
    if c.get("cached_prompt_tokens"):
        table.add_row("  prompt tokens from the server's cache", str(c["cached_prompt_tokens"]))
    if "llm_busy_share" in c:
        table.add_row("model server busy (share of wall time)", f"{100 * c['llm_busy_share']:.0f}%")
        table.add_row("requests in flight / limit (mean)", f"{100 * c.get('llm_utilisation', 0):.0f}%")
    for endpoint, limit in sorted((c.get("llm_concurrency") or {}).items()):
        table.add_row(f"  concurrency limit {endpoint}", str(limit))
    result = read_result(job, GenerationResult)
    if result.tokens_per_accepted is not None:
        table.add_row("tokens per accepted example", f"{result.tokens_per_accepted:,.1f}")
    if result.tokens_per_second is not None:
        table.add_row("tokens/s (wall time on the model servers)",
                      f"{result.tokens_per_second:,.1f} ({c.get('llm_wall_s', 0):,.1f} s)")
    if result.cost is not None:
        per = result.cost_per_accepted
        rate = {"per_gpu_hour": ", per GPU-hour", "per_million_tokens": ", per million tokens"}.get(
            result.cost_rate or "", "")
        table.add_row(f"cost (per accepted example){rate}",
                      f"{result.cost:.4f} ({'-' if per is None else f'{per:.6f}'})")
    report = result.contamination
    if report:
        table.add_row("contaminated candidates", str(report.get("candidates_hit", 0)))
        for bench, figures in (report.get("benchmarks") or {}).items():
            table.add_row(f"  {bench}", f"{figures['items_hit']} item(s) hit")
    if result.stopped:
        table.add_row("stopped", result.stopped)
    if result.judge_scores and result.judge_scores.get("judge"):
        judge_rows(table, result.judge_scores)
    if job.started_at and job.finished_at:
        table.add_row("time", f"{(job.finished_at - job.started_at).total_seconds():.1f} s")
    return table


def run_with_progress(url: str, job_id: int, settings: Any, label: str = "done",
                      measure: Callable[[Any], jobs.Progress] | None = None, config: Any = None) -> Any:
    """Run the job here; the bar follows the kind's progress measure (from the registry).
    `config`: the core configuration to run it with (default: the settings')."""
    with session_scope(url) as session:
        job = store.get_job(session, job_id)
    measure = measure or jobs.get(job.kind).progress
    progress = Progress(
        TextColumn(f"[bold]{label}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[line]}"),
        console=console,
        transient=False,
    )
    with progress:
        first = measure(job)
        bar = progress.add_task("run", total=first.target, line="starting…")
        last = [0.0]

        def show(counters: dict[str, Any]) -> None:
            now = measure(job.model_copy(update={"counters": counters}))
            progress.update(bar, total=now.target, completed=now.done, line=_progress_line(counters))

        def update(counters: dict[str, Any]) -> None:
            if time.monotonic() - last[0] >= 0.2:
                last[0] = time.monotonic()
                show(counters)

        job = lifecycle.run_job(url, job_id, config or settings.core_config(), progress=update)
        show(job.counters)
    return job


METHODS = {"self-instruct": "self_instruct", "evol-instruct": "evol_instruct"}


def register(cli: typer.Typer) -> None:
    @cli.command("generate")
    def generate(
        method: str = typer.Option("self-instruct", "--method", "-m", help="self-instruct | evol-instruct"),
        seeds: Path = typer.Option(DEFAULT_SEEDS, "--seeds", "-s", help="Seed file: Self-Instruct JSONL, Alpaca JSON or CSV."),
        source: str | None = typer.Option(
            None, "--from", help="Evol-Instruct's pool: a seed file, or the id of a finished generation job "
            "(its accepted instructions). Default: --seeds.",
        ),
        target: int | None = typer.Option(None, "--target", "-n", help="Self-Instruct: curated instructions to produce (default 100)."),
        rounds: int | None = typer.Option(None, "--rounds", "-r", help="Evol-Instruct: evolution rounds (default 4)."),
        out: Path | None = typer.Option(None, "--out", "-o", help="Also write the curated data here."),
        fmt: str = typer.Option("alpaca", "--format", "-f", help="alpaca | messages | prompt-completion"),
        seed: int | None = typer.Option(None, "--seed", help="Random seed (prompt sampling and requests)."),
        param: list[str] = typer.Option([], "--param", "-p", help="Any method parameter, as key=value (repeatable)."),
        examples: int = typer.Option(3, "--examples", help="Accepted examples to print at the end."),
        estimate: bool = typer.Option(False, "--estimate", help="Run a pilot of a few real requests (Self-Instruct: "
                                      "a few curated examples; Evol-Instruct: a few lineages through every round) and "
                                      "print the tokens (and cost, when priced) expected to reach the target; stores nothing."),
        benchmark: list[Path] = typer.Option([], "--benchmark", help="Decontaminate against this benchmark file "
                                             "(any seed format; repeatable): stored as a benchmark set for the job."),
        model: str | None = typer.Option(None, "--model", help="The embedded model to start when no model server is "
                                         "set: gemma-3-270m (base, the default) or smollm2-135m-instruct (chat)."),
        responder: str | None = typer.Option(None, "--responder", help="The responder's model (instances, responses): "
                                             "an embedded model name, started alongside, or a model id on the servers."),
    ) -> None:
        """Run a generation job here and now (Self-Instruct, or Evol-Instruct), and print what it produced."""
        kind = METHODS.get(method.strip().lower().replace("_", "-"))
        if kind is None:
            raise CliError(f"unknown method {method!r}; use self-instruct or evol-instruct")
        if kind == "self_instruct" and (source is not None or rounds is not None):
            raise CliError("--from and --rounds are Evol-Instruct options; add --method evol-instruct")
        if kind == "evol_instruct" and target is not None:
            raise CliError("Evol-Instruct runs --rounds over its whole pool; --target is a Self-Instruct option")
        if out is not None and fmt not in ("alpaca", "messages", "prompt-completion"):
            raise CliError(f"unknown format {fmt!r}; use alpaca, messages or prompt-completion")
        settings = load_settings()
        if model is not None:
            from app.core.llm.embedded import EMBEDDED_MODELS

            if model.strip().lower() not in EMBEDDED_MODELS:
                raise CliError(f"--model: unknown embedded model {model!r}; known: {', '.join(EMBEDDED_MODELS)} "
                               "(a model on your own servers: SPROUT_LLM_BASE_URLS and SPROUT_LLM_MODEL)")
            embedded = settings.embedded.model_copy(update={"model": model.strip().lower()})
            settings = settings.model_copy(update={"embedded": embedded})
        overrides = parse_overrides(param)
        if responder is not None:
            overrides["responder_model"] = responder
        if kind == "self_instruct":
            overrides["target"] = target if target is not None else overrides.get("target", 100)
        elif rounds is not None:
            overrides["rounds"] = rounds
        if seed is not None:
            overrides["seed"] = seed
        try:
            params = jobs.get(kind).validate_params(overrides, settings.core_config().defaults)
        except ValidationError as exc:
            raise CliError(f"bad parameter: {describe_validation_error(exc)}") from None
        if estimate:
            _print_estimate(settings, kind, seeds, source, params)
            return
        benchmarks = [_load_benchmark(path) for path in benchmark]  # read and checked before anything is stored
        if kind == "self_instruct":
            job_id = _create_self_instruct(settings, seeds, params, benchmarks)
            job = run_with_progress(database_url(settings), job_id, settings, label="accepted")
        else:
            job_id, pool = _create_evol_instruct(settings, source, seeds, params, benchmarks)
            job = run_with_progress(database_url(settings), job_id, settings, label="evolutions")
        console.print(summary_table(job))
        if job.status == "failed":
            raise CliError(f"job {job_id} failed: {job.error}")
        if job.status == "queued":  # paused by a model-server outage
            raise CliError(f"job {job_id} is paused, {job.error}; what it accepted is kept")
        url = database_url(settings)
        if kind == "self_instruct":
            _print_examples(url, job_id, examples)
        else:
            _print_lineages(url, job_id, examples)
        if out is not None:
            n = export_job(url, job_id, fmt, out)
            console.print(f"wrote {n} examples to {out} ({fmt})")
        console.print(f"job id: {job_id}  (sprout jobs show {job_id} · sprout export {job_id} --format messages --out data.jsonl)")


def _print_estimate(settings: Any, kind: str, seeds: Path, source: str | None, params: Any) -> None:
    from app.core.jobs.estimate import PILOT, PILOT_LINEAGES, estimate_evol_instruct, estimate_self_instruct
    from app.core.llm.client import LLMError

    try:
        if kind == "self_instruct":
            _, tasks = _load_seeds(seeds)
            console.print(f"pilot: Self-Instruct until {min(PILOT, params.target)} examples are curated "
                          "(nothing is stored)…")
            est = estimate_self_instruct(params, tasks, settings.core_config())
        else:
            pool = _evol_pool(settings, source, seeds)
            console.print(f"pilot: Evol-Instruct of {min(PILOT_LINEAGES, len(pool))} of {len(pool)} instructions "
                          f"through {params.rounds} round(s) (nothing is stored)…")
            est = estimate_evol_instruct(params, pool, settings.core_config())
    except LLMError as exc:
        raise CliError(f"the model servers did not answer the pilot: {exc}") from None
    except ValueError as exc:
        raise CliError(str(exc)) from None
    console.print(estimate_table(est))


def _evol_pool(settings: Any, source: str | None, seeds: Path) -> list[Any]:
    """The pool an Evol-Instruct job would evolve (a seed file, or a finished job's accepted
    instructions), read through the engine's own `source_pool`, as `_create_evol_instruct` reads it."""
    from app.models import Job

    if source is not None and source.strip().isdigit() and not Path(source).is_file():
        with session_scope(database_url(settings)) as session:
            return source_pool(session, Job(kind="evol_instruct", source_job_id=int(source)))
    return _load_seeds(Path(source) if source is not None else seeds)[1]


def estimate_table(est: Any) -> Table:
    """An estimate (`app.core.jobs.estimate.Estimate`) as the CLI prints it."""
    table = Table(title=f"estimate for {est.target:,} {est.unit} ({est.basis})", show_header=False)
    table.add_column("what", style="bold")
    table.add_column("value", justify="right")
    if est.basis == "pilot" and est.pilot_prompt_tokens is not None:
        accepted = "" if est.pilot_accepted is None else f"{est.pilot_accepted} / "
        table.add_row(f"pilot: {'accepted / ' if accepted else ''}tokens (prompt + completion)",
                      f"{accepted}{est.pilot_prompt_tokens:,} + {est.pilot_completion_tokens:,}")
    for build in est.history or []:
        table.add_row(f"  version {build['version']} (build job {build['build_job_id']})",
                      f"{build['total_tokens']:,} tokens for {build['added']} added ({build['tokens_per_added']:,.1f} each)")
    if est.seconds:
        rate = f" ({est.tokens_per_second:,.1f} tokens/s)" if est.tokens_per_second else ""
        table.add_row("measured time on the model servers" if est.basis == "history" else "pilot time",
                      f"{est.seconds:,.1f} s{rate}")
    if est.expected_total_tokens is None:
        table.add_row("estimate", f"none: {est.note or 'no basis'}")
    else:
        if est.tokens_per_accepted is not None:
            table.add_row("tokens per accepted example", f"{est.tokens_per_accepted:,.1f}")
        if est.expected_accepted is not None and est.unit == "evolutions":
            table.add_row("evolutions expected to be kept", f"{est.expected_accepted:,}")
        table.add_row("expected tokens (prompt + completion)",
                      f"{est.expected_prompt_tokens:,} + {est.expected_completion_tokens:,} = {est.expected_total_tokens:,}")
        table.add_row("range", f"{est.low_total_tokens:,} – {est.high_total_tokens:,}")
        if est.expected_cost is not None:
            table.add_row(f"expected cost (range), {est.cost_rate.replace('_', ' ')}",
                          f"{est.expected_cost:.4f} ({est.low_cost:.4f} – {est.high_cost:.4f})")
        if est.note:
            table.add_row("note", est.note)
    return table


def _load_benchmark(path: Path) -> tuple[str, str, list[Any]]:
    from app.core import records
    from app.core.benchmark_sets import parse_benchmark

    try:
        fmt, items = parse_benchmark(records.read_text(path), path.name, filename=path.name)
    except records.RecordError as exc:
        message = str(exc)
        raise CliError(message if message.startswith(str(path)) else f"{path} {message}" if message.startswith("line ")
                       else f"{path}: {message}") from None
    return path.name, fmt, items


def _with_benchmarks(session: Any, params: Any, benchmarks: list[tuple[str, str, list[Any]]]) -> Any:
    """The job's parameters with the --benchmark files stored (in the job's transaction) and named."""
    ids = [store.import_benchmark_set(session, name, fmt, items).id for name, fmt, items in benchmarks]
    return params.model_copy(update={"decontaminate_against": [*params.decontaminate_against, *ids]}) if ids else params


def _load_seeds(path: Path) -> tuple[str, list[Any]]:
    try:
        return load_seed_file(path)
    except SeedFormatError as exc:
        raise CliError(f"{path}: {exc}") from None


def _create_self_instruct(settings: Any, seeds: Path, params: Any, benchmarks: list[Any] = ()) -> int:
    fmt_name, tasks = _load_seeds(seeds)
    with session_scope(database_url(settings)) as session:  # one transaction: no seed set without its job
        seed_set = store.import_seed_set(session, seeds.name, fmt_name, tasks)
        params = _with_benchmarks(session, params, benchmarks)
        job = _create(session, jobs.JobRequest("self_instruct", params.model_dump(mode="json"), seed_set_id=seed_set.id))
        job_id = job.id
    console.print(f"job {job_id}: Self-Instruct from {len(tasks)} seed tasks ({seeds.name}), target {params.target}")
    return job_id


def _create_evol_instruct(settings: Any, source: str | None, seeds: Path, params: Any,
                         benchmarks: list[Any] = ()) -> tuple[int, int]:
    """Store the job (and the seed file, if the pool is one); returns (job id, pool size).

    The pool is read back through the engine's own `source_pool`, so a source job that
    cannot be evolved is refused here, before a job exists."""
    source_job_id: int | None = None
    path: Path | None = None
    if source is not None and source.strip().isdigit() and not Path(source).is_file():
        source_job_id = int(source)
    else:
        path = Path(source) if source is not None else seeds
    loaded = _load_seeds(path) if path is not None else None
    with session_scope(database_url(settings)) as session:
        seed_set_id = None
        if path is not None and loaded is not None:
            seed_set_id = store.import_seed_set(session, path.name, *loaded).id
        params = _with_benchmarks(session, params, benchmarks)
        job = _create(session, jobs.JobRequest("evol_instruct", params.model_dump(mode="json"),
                                               seed_set_id=seed_set_id, source_job_id=source_job_id))
        try:
            pool = len(source_pool(session, job))
        except ValueError as exc:
            raise CliError(str(exc)) from None
        job_id = job.id
    pool = min(pool, params.max_pool or pool)
    where = f"job {source_job_id}'s accepted instructions" if source_job_id is not None else f"{path.name}"
    rounds = f"{params.rounds} round{'s' if params.rounds != 1 else ''}"
    console.print(f"job {job_id}: Evol-Instruct of {pool} instructions ({where}), {rounds}")
    return job_id, pool


def _create(session: Any, request: jobs.JobRequest) -> Any:
    """Store a job through the core's one request path (the API's too); one line on error."""
    try:
        return requests.create_job(session, request, load_settings().core_config().defaults)
    except ValidationError as exc:
        raise CliError(f"bad parameter: {describe_validation_error(exc)}") from None
    except ValueError as exc:  # JobRequestError: a source that cannot be used, too few seeds, ...
        raise CliError(str(exc).replace("source_job_id", "--from")) from None


def _print_examples(url: str, job_id: int, examples: int) -> None:
    with session_scope(url) as session:
        rows = store.curated_examples(session, job_id)
    seen: set[int] = set()
    for row in rows:
        if len(seen) >= examples:
            break
        if row["id"] in seen:
            continue
        seen.add(row["id"])
        console.rule(f"example (instruction #{row['id']})", style="dim")
        console.print(f"[bold]instruction:[/] {row['instruction']}", highlight=False)
        if row["input"]:
            console.print(f"[bold]input:[/] {row['input']}", highlight=False)
        console.print(f"[bold]output:[/] {row['output']}", highlight=False)


def _print_lineages(url: str, job_id: int, examples: int) -> None:
    """A few lineages' last survivors, with the chain of rewrites that led to them."""
    with session_scope(url) as session:
        rows = lineage.lineage_examples(session, job_id, final_only=True, include_roots=False)
    for row in rows[:examples]:
        console.rule(f"lineage of instruction #{row['id']}", style="dim")
        for step in row["lineage"]:
            how = "root" if step["operation"] is None else step["operation"]
            console.print(f"[bold]round {step['round']} ({how}):[/] {step['instruction']}", highlight=False)
        console.print(f"[bold]response:[/] {row['output']}", highlight=False)
    if not rows:
        console.print("no evolution survived (see the rejection rules above)")
