"""`sprout datasets ...`: named, versioned, growing datasets from the command line.

A thin shell over `app.core.datasets`, run by the operator. Ownership: `--owner NAME` (or
`SPROUT_OWNER`) acts as that owner, the owner of an API key (`sprout apikey list` shows
them): the datasets made, the seed files imported and the builds run belong to that owner,
so they show in the dashboard and the API of that owner's keys, and `--seed-set ID` takes
that owner's seed sets (uploaded from the dashboard). Without it the commands act as the
local owner: datasets only the command line sees. `build` runs one build in this process
on the embedded defaults, with a progress bar, as `sprout generate` runs a job.

A recipe is given by options or as a JSON file (`--recipe`, the API's `recipe` object):

    sprout datasets create support-sft --seeds seeds.jsonl --grow-by 50 \\
        --step self_instruct:temperature=0.7 --then evol_instruct:rounds=1 --format messages

`--step KIND[:key=value,...]` is the first step (it takes the seeds; default
`self_instruct`); each `--then KIND[:key=value,...]` takes the output of the step before
it. Values are JSON when they parse as JSON (`rounds=1`, `blacklist=["image"]`), text
otherwise. Seed files are imported as seed sets in the same transaction as the dataset,
so a refused recipe leaves no seed set behind. Every error is one line and a non-zero
exit, with nothing written.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import typer
from pydantic import ValidationError
from rich.table import Table
from sqlmodel import Session

from app.cli.common import (
    CliError,
    console,
    database_url,
    dataset_session,
    describe_validation_error,
    load_settings,
    name_ref,
)
from app.cli.followups import run_followups
from app.core import export as formats
from app.core import jobs, store
from app.core.datasets import diff, fires, pages, schedule, tags
from app.core.datasets import export as ds_export
from app.core.datasets import versions as v
from app.core.datasets.curation import QUERY_RULES, ExampleQuery, remove_examples
from app.core.handoff import dataset_settings, training_gate
from app.core.jobs import dataset_build, requests, version_handoff
from app.core.jobs.results import read_result
from app.core.seeds import SeedFormatError, load_seed_file
from app.models import Dataset, DatasetVersion, JobStatus, SeedSet, utcnow

app = typer.Typer(
    help="Datasets: named, versioned, growing. create | list | show | build | versions | diff | export | tag | "
    "schedule | pause | resume | remove | check | bundle | deliver | handoff",
    no_args_is_help=True,
)

_ACTING: dict[str, str | None] = {"owner": None}  # set by the group's --owner / SPROUT_OWNER


def acting_owner() -> str | None:
    """The owner the commands act as: an API key's owner, or None (the local, owner-less datasets)."""
    return _ACTING["owner"]


@app.callback()
def _group(
    owner: str | None = typer.Option(
        None, "--owner", envvar="SPROUT_OWNER",
        help="Act as this API key owner: the datasets, seed sets and builds are theirs and show in their dashboard. "
        "Default: the local owner (command line only).",
    ),
) -> None:
    if owner is not None and (not owner.strip() or len(owner.strip()) > 200):
        raise CliError("--owner must be 1 to 200 characters (an API key's owner; see `sprout apikey list`)")
    _ACTING["owner"] = owner.strip() if owner is not None else None
_PAIR_SPLIT = re.compile(r",(?=\s*[A-Za-z_][A-Za-z0-9_]*\s*=)")


def _when(moment: datetime | None, tz: str | None = None) -> str:
    if moment is None:
        return "-"
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=ZoneInfo("UTC"))
    if tz and tz != "UTC":
        return f"{moment.astimezone(ZoneInfo(tz)).strftime('%Y-%m-%d %H:%M %Z')} ({moment.strftime('%H:%M')} UTC)"
    return moment.strftime("%Y-%m-%d %H:%M UTC")


# --- recipes from options -----------------------------------------------------------------------------
def parse_step(spec: str, source: str, option: str) -> dict[str, Any]:
    """`KIND[:key=value,...]` -> a recipe step taking `source`."""
    kind, _, rest = spec.partition(":")
    kind = kind.strip().lower().replace("-", "_")
    if not kind:
        raise CliError(f"{option} {spec!r}: name a job kind, e.g. self_instruct or evol_instruct:rounds=1")
    params: dict[str, Any] = {}
    for pair in _PAIR_SPLIT.split(rest) if rest.strip() else []:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise CliError(f"{option} {spec!r}: expected key=value after the kind, got {pair!r}")
        try:
            params[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            params[key.strip()] = value
    return {"kind": kind, "params": params, "source": source}


def recipe_from_options(step: str | None, then: list[str], grow_by: int | None, export_formats: list[str],
                        size_cap: int | None, min_yield: float | None) -> dict[str, Any]:
    if grow_by is None:
        raise CliError("--grow-by is required: how many new curated examples one build adds (or give --recipe)")
    data: dict[str, Any] = {
        "steps": [parse_step(step or "self_instruct", "seeds", "--step"),
                  *(parse_step(s, "previous", "--then") for s in then)],
        "grow_by": grow_by,
        "export_formats": export_formats or ["messages"],
    }
    if size_cap is not None:
        data["size_cap"] = size_cap
    if min_yield is not None:
        data["min_yield_share"] = min_yield
    return data


def _recipe_file(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise CliError(f"--recipe {path}: {exc.strerror}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CliError(f"--recipe {path}: not a JSON file ({exc})") from None
    if not isinstance(data, dict):
        raise CliError(f"--recipe {path}: the recipe must be a JSON object")
    return data


def _seed_files(paths: list[Path]) -> list[tuple[Path, str, list[Any]]]:
    loaded = []
    for path in paths:
        try:
            loaded.append((path, *load_seed_file(path)))
        except SeedFormatError as exc:
            raise CliError(f"{path}: {exc}") from None
    return loaded


# --- commands ----------------------------------------------------------------------------------------
def _check_seed_set_owners(session: Session, ids: list[int]) -> None:
    """The operator sees every seed set: one of another owner gets a hint (`--owner`), not just "no seed set"."""
    acting = acting_owner()
    for ident in ids:
        row = session.get(SeedSet, ident) if 0 < ident < 2**31 else None
        if row is not None and row.owner != acting:
            whose = f"API key owner {row.owner!r}" if row.owner else "the local owner"
            hint = f"pass --owner {row.owner}" if row.owner else "leave out --owner"
            raise CliError(f"--seed-set {ident}: the seed set belongs to {whose}; {hint} to make the dataset theirs")


@app.command("create")
def create(
    name: str = typer.Argument(..., help="A unique name: letters, digits, '.', '_', '-'."),
    seeds: list[Path] = typer.Option([], "--seeds", "-s", help="A seed file to import (repeatable)."),
    seed_set: list[int] = typer.Option([], "--seed-set", help="An already imported seed set's id (repeatable)."),
    grow_by: int | None = typer.Option(None, "--grow-by", "-n", help="New curated examples one build adds."),
    step: str | None = typer.Option(None, "--step", help="The first step, KIND[:key=value,...] (default self_instruct)."),
    then: list[str] = typer.Option([], "--then", help="A step on the previous step's output, KIND[:key=value,...] "
                                   "(repeatable)."),
    export_format: list[str] = typer.Option([], "--format", "-f", help="A format each version is offered in "
                                            "(repeatable; default messages)."),
    size_cap: int | None = typer.Option(None, "--size-cap", help="Stop growing at this many examples."),
    min_yield: float | None = typer.Option(None, "--min-yield", help="Pause the schedule when a build adds less "
                                           "than this share of --grow-by (default 0.1)."),
    recipe_path: Path | None = typer.Option(None, "--recipe", help="The recipe as a JSON file, instead of the "
                                            "step options (--seeds/--seed-set add to its seed sets)."),
    description: str = typer.Option("", "--description", "-d", help="What the dataset is for."),
    license: str | None = typer.Option(None, "--license", help="e.g. apache-2.0 (goes into the dataset card)."),
) -> None:
    """Create a dataset from seed files and a recipe (no version until its first build)."""
    if recipe_path is not None:
        if step is not None or then or grow_by is not None or export_format or size_cap is not None \
                or min_yield is not None:
            raise CliError("--recipe holds the steps, --grow-by, --format, --size-cap and --min-yield: give one or "
                           "the other")
        data = _recipe_file(recipe_path)
    else:
        data = recipe_from_options(step, then, grow_by, export_format, size_cap, min_yield)
    if not seeds and not seed_set and not data.get("seed_set_ids"):
        raise CliError("give the seeds: --seeds FILE (or --seed-set ID)")
    loaded = _seed_files(seeds)
    settings = load_settings()
    with dataset_session(database_url(settings)) as session:  # one transaction: no seed set without its dataset
        _check_seed_set_owners(session, seed_set)
        imported = [store.import_seed_set(session, path.name, fmt, tasks, owner=acting_owner()).id
                    for path, fmt, tasks in loaded]
        given = data.get("seed_set_ids", [])
        if isinstance(given, list):  # anything else is left for the recipe check to name
            data = {**data, "seed_set_ids": [*given, *seed_set, *imported]}
        recipe = dataset_build.recipe_for(data, settings.core_config().defaults)
        dataset = v.create_dataset(session, acting_owner(), name, recipe, description=description, license=license)
        steps = " -> ".join(s.kind for s in recipe.steps)
    tasks = sum(len(t) for _, _, t in loaded)
    files = f", {tasks} seed tasks imported from {', '.join(p.name for p, _, _ in loaded)}" if loaded else ""
    console.print(f"dataset {dataset.name!r} created: {steps}, {recipe.grow_by} new examples a build, seed sets "
                  f"{', '.join(map(str, recipe.seed_set_ids))}{files}", highlight=False)
    console.print(f"next: sprout datasets build {dataset.name}", highlight=False)


@app.command("list")
def list_cmd(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Every dataset, by name, with its latest version and schedule."""
    with dataset_session() as session:
        total, rows = pages.datasets_page(session, acting_owner(), 0, 10_000)
        latest = pages.latest_versions(session, [d.id for d in rows])
    if as_json:
        print(json.dumps([_dataset_dict(d, latest.get(d.id)) for d in rows], indent=2))
        return
    table = Table("name", "latest", "examples", "schedule", "updated", title=f"{total} dataset(s)")
    for d in rows:
        version = latest.get(d.id)
        table.add_row(d.name, str(version.number) if version else "-", str(version.row_count) if version else "0",
                      _schedule_line(d), _when(d.updated_at))
    console.print(table)


def _training_line(training: dict[str, Any] | None) -> str:
    if training is None:
        return "off (sprout datasets handoff NAME --train)"
    gate, evaluation = training["gate"], training["eval"]
    return (f"each new version, params {json.dumps(training['params'])}; gate tag {gate['tag']} (tolerance "
            + ", ".join(f"{k}={t}" for k, t in gate["tolerance"].items())
            + f"); {evaluation['tasks']} evaluation tasks, sha256 {evaluation['sha256'][:12]}")


def _schedule_line(d: Dataset) -> str:
    if d.schedule_cron is None:
        return "-"
    line = f"{d.schedule_cron} ({d.schedule_timezone})"
    return f"{line}, paused: {d.pause_reason}" if d.schedule_paused else line


def _dataset_dict(d: Dataset, latest: DatasetVersion | None) -> dict[str, Any]:
    return {
        "name": d.name, "description": d.description, "license": d.license, "recipe": d.recipe,
        "latest": _version_dict(latest) if latest else None,
        "schedule": None if d.schedule_cron is None else {
            "cron": d.schedule_cron, "timezone": d.schedule_timezone, "missed_fire_policy": d.missed_fire_policy,
            "paused": d.schedule_paused, "pause_reason": d.pause_reason},
    }


def _version_dict(version: DatasetVersion, with_card: bool = False) -> dict[str, Any]:
    data = {"number": version.number, "kind": version.kind, "build_job_id": version.build_job_id,
            "created_at": _when(version.created_at), "row_count": version.row_count, "counts": version.counts,
            "content_hash": version.content_hash}
    if with_card:
        data["card"] = version.card
    return data


@app.command("show")
def show(name: str = typer.Argument(..., help="The dataset."),
         as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """One dataset: its recipe, latest version, tags and schedule."""
    with dataset_session() as session:
        d = v.get_dataset(session, acting_owner(), name)
        latest = v.latest_version(session, d.id)
        tagged = tags.list_tags(session, d.id)
        upcoming = schedule.upcoming(d, utcnow())
        handoff = dataset_settings.describe(session, d)
        trained = training_gate.latest_runs(session, [latest.id]).get(latest.id) if latest else None
    if as_json:
        print(json.dumps({**_dataset_dict(d, latest), "tags": tagged, "handoff": handoff,
                          "latest_training": trained, "next_fires": [t.isoformat() for t in upcoming]}, indent=2))
        return
    recipe = v.recipe_of(d)
    console.rule(f"dataset {d.name}")
    if d.description:
        console.print(d.description, highlight=False)
    lines = [
        ("license", d.license or "-"),
        ("seed sets", ", ".join(map(str, recipe.seed_set_ids))),
        ("steps", " -> ".join(f"{s.kind}{'(' + json.dumps(s.params) + ')' if s.params else ''}" for s in recipe.steps)),
        ("grow by", str(recipe.grow_by)),
        ("size cap", str(recipe.size_cap) if recipe.size_cap else "-"),
        ("formats", ", ".join(recipe.export_formats)),
        ("latest", f"version {latest.number}: {latest.row_count} examples, sha256 {latest.content_hash[:16]}…"
         if latest else "no version yet (sprout datasets build " + d.name + ")"),
        ("tags", ", ".join(f"{k}={n}" for k, n in tagged.items()) or "-"),
        ("schedule", _schedule_line(d)),
        ("delivered to", ", ".join(x["name"] for x in handoff["destinations"]) or "-"),
        ("training", _training_line(handoff["training"])),
        ("latest training", training_gate.verdict_line(trained)),
    ]
    if latest is not None:  # candidates of its build that reproduced a benchmark or evaluation task
        lines += version_contamination(latest)
    for key, value in lines:
        console.print(f"[bold]{key}:[/] {value}", highlight=False)
    for t in upcoming:
        console.print(f"  next fire: {_when(t, d.schedule_timezone)}", highlight=False)


@app.command("build")
def build(name: str = typer.Argument(..., help="The dataset to build."),
          estimate: bool = typer.Option(False, "--estimate", help="Print what the build is expected to spend "
                                        "(from the dataset's earlier builds, else a pilot) and build nothing."),
          pilot: bool = typer.Option(True, "--pilot/--no-pilot", help="With --estimate and no earlier build: run a "
                                     "pilot of a few real requests per step (--no-pilot: send none).")) -> None:
    """Run one build here and now (on the embedded model unless SPROUT_LLM_BASE_URLS names servers)."""
    from app.cli.generate import run_with_progress

    settings = load_settings()
    url = database_url(settings)
    if estimate:
        _print_build_estimate(url, settings, name, pilot)
        return
    with dataset_session(url) as session:
        d = v.get_dataset(session, acting_owner(), name)
        request = jobs.JobRequest(kind=dataset_build.KIND, params={"dataset_id": d.id}, owner=acting_owner())
        try:
            job_id = requests.create_job(session, request, settings.core_config().defaults).id
        except ValidationError as exc:
            raise CliError(f"bad parameter: {describe_validation_error(exc)}") from None
        except ValueError as exc:  # JobRequestError
            raise CliError(str(exc)) from None
        before = v.latest_number(session, d.id)
    console.print(f"build job {job_id}: dataset {name!r}, from version {before or 'none'}", highlight=False)
    job = run_with_progress(url, job_id, settings, label="added")
    if job.status != JobStatus.succeeded.value:
        raise CliError(f"build job {job_id} {job.status}: {job.error or 'no version was committed'}")
    result = read_result(job, dataset_build.DatasetBuildResult)
    number = result.version
    with dataset_session(url) as session:
        d = v.get_dataset(session, acting_owner(), name)
        version = v.get_version(session, d.id, number) if number is not None else None
    _print_build(job_id, result, version, d)
    if result.handoff_error:
        console.print(f"the version's hand-off could not be queued: {result.handoff_error} "
                      f"(sprout datasets handoff {name}@{number} --now)", highlight=False)
    run_followups(url, settings, job)  # the version's hand-off, then its training


def _print_build_estimate(url: str, settings: Any, name: str, pilot: bool) -> None:
    from app.cli.generate import estimate_table
    from app.core.jobs.build_estimate import estimate_build
    from app.core.llm.client import LLMError

    with dataset_session(url) as session:
        d = v.get_dataset(session, acting_owner(), name)
        try:
            est = estimate_build(session, d, settings.core_config(), pilot=pilot)
        except LLMError as exc:
            raise CliError(f"the model servers did not answer the pilot: {exc}") from None
        except ValueError as exc:
            raise CliError(str(exc)) from None
    console.print(estimate_table(est))


def contamination_lines(report: dict[str, Any] | None) -> list[tuple[str, str]]:
    """A contamination report (a job's, or a version's summed over its build) as (what, value) lines."""
    if not report:
        return []
    lines = [("candidates contaminated", str(report.get("candidates_hit", 0)))]
    for bench, figures in (report.get("benchmarks") or {}).items():
        lines.append((f"  {bench}", f"{figures['items_hit']} item(s) hit, {figures['hits']} time(s)"))
    return lines


def version_contamination(version: DatasetVersion) -> list[tuple[str, str]]:
    """A version's contamination report (its build's steps summed) as `show` prints it."""
    report = ((version.counts or {}).get("build") or {}).get("contamination")
    if report is None:
        return [("contamination", "-" if version.kind != "build" else
                 "none recorded (nothing was checked, or the build predates the report)")]
    if not report.get("candidates_hit"):
        return [("contamination", "none found")]
    return [("contamination", f"{report['candidates_hit']} candidate(s) rejected"),
            *contamination_lines(report)[1:]]


def _print_build(job_id: int, result: dataset_build.DatasetBuildResult, version: DatasetVersion | None,
                 d: Dataset) -> None:
    steps = ", ".join(map(str, result.steps)) or "-"
    if version is None:
        console.print(f"build job {job_id} added nothing: no new version (step jobs {steps})", highlight=False)
    else:
        counts = version.counts or {}
        table = Table(title=f"{d.name} version {version.number}", show_header=False)
        table.add_column("what", style="bold")
        table.add_column("value", justify="right")
        table.add_row("examples added", str(result.added if result.added is not None else counts.get("added", 0)))
        for method, n in sorted((counts.get("added_by_method") or {}).items()):
            table.add_row(f"  by {method}", str(n))
        rejected = (counts.get("build") or {}).get("rejected_by_rule") or {}
        table.add_row("candidates rejected", str(sum(rejected.values())))
        for rule, n in sorted(rejected.items(), key=lambda kv: -kv[1]):
            table.add_row(f"  rejected: {rule}", str(n))
        for what, value in contamination_lines((counts.get("build") or {}).get("contamination")):
            table.add_row(what, value)
        build_counts = counts.get("build") or {}
        tokens = int(build_counts.get("prompt_tokens") or 0) + int(build_counts.get("completion_tokens") or 0)
        if tokens:
            added = int(counts.get("added") or 0)
            table.add_row("tokens (per added example)", f"{tokens:,} ({tokens / added:,.1f})" if added else f"{tokens:,}")
        table.add_row("examples in the version", str(version.row_count))
        table.add_row("content hash", f"sha256:{version.content_hash}")
        table.add_row("step jobs", steps)
        console.print(table)
    if d.schedule_paused and d.pause_reason:
        console.print(f"schedule paused: {d.pause_reason}", highlight=False)


@app.command("versions")
def versions_cmd(name: str = typer.Argument(..., help="The dataset."),
                 as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Every version, newest first: what made it, its size and its hash."""
    with dataset_session() as session:
        d = v.get_dataset(session, acting_owner(), name)
        _, rows = pages.versions_page(session, d.id, 0, 100_000)
        tagged = pages.tags_by_version(session, d.id)
        trained = training_gate.latest_runs(session, [r.id for r in rows])
    if as_json:
        print(json.dumps([{**_version_dict(r), "tags": tagged.get(r.number, []), "training": trained.get(r.id)}
                          for r in rows], indent=2))
        return
    table = Table("version", "made by", "examples", "+added", "-removed", "tags", "created", "sha256", "training",
                  title=f"{name}: {len(rows)} version(s)")
    for r in rows:
        c = r.counts or {}
        made = f"{r.kind}{f' (job {r.build_job_id})' if r.build_job_id else ''}"
        table.add_row(str(r.number), made, str(r.row_count), str(c.get("added", 0)), str(c.get("removed", 0)),
                      ", ".join(tagged.get(r.number, [])), _when(r.created_at), r.content_hash[:12],
                      training_gate.verdict_line(trained.get(r.id)))
    console.print(table)


@app.command("diff")
def diff_cmd(
    name: str = typer.Argument(..., help="The dataset."),
    a: str = typer.Argument(..., help="From: a version number, latest or a tag."),
    b: str = typer.Argument(..., help="To: a version number, latest or a tag."),
    rows: int = typer.Option(5, "--rows", min=0, help="Rows of each side to print."),
) -> None:
    """What changed from version A to version B: counts, then the first rows added and removed."""
    with dataset_session() as session:
        d = v.get_dataset(session, acting_owner(), name)
        change = diff.diff(session, tags.resolve(session, d.id, a), tags.resolve(session, d.id, b))
        added = pages.diff_rows_page(session, change, 0, rows, "added")
        removed = pages.diff_rows_page(session, change, 0, rows, "removed")
    same = "" if change.content_changed else " (same content)"
    console.print(f"{name}: version {change.a} -> {change.b}: +{change.added} added, -{change.removed} removed, "
                  f"{change.corrected} corrected{same}", highlight=False)
    for label, counts in (("added", change.added_by_method), ("removed", change.removed_by_method)):
        if counts:
            console.print(f"  {label} by method: " + ", ".join(f"{m} {n}" for m, n in counts.items()),
                          highlight=False)
    for row in added + removed:
        sign = "+" if row["change"] == "added" else "-"
        text = row["instruction"].replace("\n", " ")
        console.print(f"{sign} #{row['id']} {text[:100]}{'…' if len(text) > 100 else ''}", highlight=False)


@app.command("export")
def export_cmd(
    target: str = typer.Argument(..., help="NAME or NAME@REF (a version number or a tag; default latest)."),
    fmt: str | None = typer.Option(None, "--format", "-f", help="alpaca | messages | prompt-completion "
                                   "(default: the recipe's first format)."),
    out: Path = typer.Option(..., "--out", "-o", help="File to write (atomically)."),
) -> None:
    """Write one version in an export format, streamed (constant memory)."""
    name, ref = name_ref(target)
    if fmt is not None and fmt not in formats.FORMATS:
        raise CliError(f"--format: unknown export format {fmt!r}; use one of {', '.join(formats.FORMATS)}")
    with dataset_session() as session:
        d = v.get_dataset(session, acting_owner(), name)
        version = tags.resolve(session, d.id, ref)
        fmt = fmt or v.recipe_of(d).export_formats[0]
        try:
            size = ds_export.write_export(session, d.id, version.number, fmt, out)
        except OSError as exc:
            raise CliError(f"cannot write {out}: {exc.strerror}") from None
    console.print(f"wrote {name} version {version.number} ({version.row_count} examples, {fmt}, {size} bytes) "
                  f"to {out}; sha256:{version.content_hash}", highlight=False)


@app.command("tag")
def tag_cmd(
    name: str = typer.Argument(..., help="The dataset."),
    tag: str = typer.Argument(..., help="The tag, e.g. prod (not latest, not a number)."),
    ref: str | None = typer.Argument(None, help="The version it points at: a number, latest or another tag."),
    delete: bool = typer.Option(False, "--delete", help="Delete the tag instead."),
) -> None:
    """Point a tag at a version (moving prod back is the rollback), or delete it."""
    if delete == (ref is not None):
        raise CliError("give the version to point the tag at, or --delete (not both)")
    with dataset_session() as session:
        d = v.get_dataset(session, acting_owner(), name)
        if delete:
            tags.delete_tag(session, d, tag)
        else:
            tags.set_tag(session, d, tag, ref)
        now = tags.list_tags(session, d.id)
    console.print(f"{name} tags: " + ", ".join(f"{k}={n}" for k, n in now.items()), highlight=False)


@app.command("schedule")
def schedule_cmd(
    name: str = typer.Argument(..., help="The dataset."),
    cron: str | None = typer.Option(None, "--cron", help="Five fields (minute hour day month weekday) or @daily."),
    tz: str = typer.Option("UTC", "--tz", help="IANA time zone the cron expression is read in."),
    missed: str = typer.Option("skip", "--missed", help="Due times missed while no scheduler ran: skip | run_once."),
    show_only: bool = typer.Option(False, "--show", help="Show the schedule, next fires and history."),
    clear: bool = typer.Option(False, "--clear", help="Remove the schedule (its history stays)."),
    history: int = typer.Option(20, "--history", min=0, help="Fires to show, latest first."),
) -> None:
    """Build the dataset on a schedule (`sprout beat` fires it), or show or clear the schedule."""
    if sum([cron is not None, show_only, clear]) > 1:
        raise CliError("give one of --cron, --show, --clear")
    with dataset_session() as session:
        d = v.get_dataset(session, acting_owner(), name)
        if cron is not None:
            schedule.set_schedule(session, d, cron, tz, missed)
        elif clear:
            schedule.clear_schedule(session, d)
        upcoming = schedule.upcoming(d, utcnow())
        fired = fires.history(session, d.id, history)
    _print_schedule(d, upcoming, fired)


def _print_schedule(d: Dataset, upcoming: list[datetime], fired: list[Any]) -> None:
    if d.schedule_cron is None:
        console.print(f"{d.name}: no schedule", highlight=False)
    else:
        state = f"paused: {d.pause_reason}" if d.schedule_paused else "active"
        console.print(f"{d.name}: {d.schedule_cron} in {d.schedule_timezone}, missed fires: "
                      f"{d.missed_fire_policy}, {state}", highlight=False)
    for t in upcoming:
        console.print(f"  next fire: {_when(t, d.schedule_timezone)}", highlight=False)
    if fired:
        table = Table("due", "status", "job", "why", title="fires, latest first")
        for f in fired:
            table.add_row(_when(f.due_at, d.schedule_timezone), f.status, str(f.job_id or "-"), f.reason or "")
        console.print(table)


@app.command("pause")
def pause_cmd(name: str = typer.Argument(..., help="The dataset."),
              reason: str = typer.Option("paused by request", "--reason", help="Why (shown with the schedule).")) -> None:
    """Pause the schedule, keeping the reason."""
    with dataset_session() as session:
        d = schedule.pause(session, v.get_dataset(session, acting_owner(), name), reason)
    console.print(f"{d.name}: schedule paused ({reason})", highlight=False)


@app.command("resume")
def resume_cmd(name: str = typer.Argument(..., help="The dataset.")) -> None:
    """Resume the schedule; due times missed while paused are not built."""
    with dataset_session() as session:
        d = schedule.resume(session, v.get_dataset(session, acting_owner(), name))
        upcoming = schedule.upcoming(d, utcnow())
    nxt = f"; next fire {_when(upcoming[0], d.schedule_timezone)}" if upcoming else ""
    console.print(f"{d.name}: schedule resumed{nxt}", highlight=False)


def _ids(text: str) -> list[int]:
    try:
        ids = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise CliError(f"--ids: comma-separated example ids, e.g. 12,15; got {text!r}") from None
    if not ids or min(ids) < 1 or max(ids) > v.MAX_NUMBER:
        raise CliError(f"--ids: comma-separated example ids (1 to {v.MAX_NUMBER}), got {text!r}")
    return ids


@app.command("remove")
def remove_cmd(
    name: str = typer.Argument(..., help="The dataset."),
    ids: str | None = typer.Option(None, "--ids", help="Example ids, comma-separated (see `sprout datasets diff`)."),
    rule: list[str] = typer.Option([], "--rule", help=f"Examples today's filters reject with this rule "
                                   f"(repeatable): {', '.join(QUERY_RULES)}."),
    contains: str | None = typer.Option(None, "--contains", help="Examples whose text contains this "
                                        "(case-insensitive)."),
    expected_latest: int | None = typer.Option(None, "--expected-latest", help="Refuse if the latest version "
                                               "is no longer this one."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Say how many would go; change nothing."),
) -> None:
    """A new version without some examples: by id, by rule, by text (criteria of a query all hold)."""
    if ids is None and not rule and contains is None:
        raise CliError("name the examples to remove: --ids 1,2, --rule too_short, or --contains TEXT")
    example_ids = _ids(ids) if ids is not None else None
    query = None
    if rule or contains is not None:
        try:
            query = ExampleQuery(text=contains, rules=rule or None)
        except ValidationError as exc:
            raise CliError(describe_validation_error(exc).replace("rules", "--rule").replace("text", "--contains")
                           ) from None
    settings = load_settings()
    url = database_url(settings)
    with dataset_session(url) as session:
        d = v.get_dataset(session, acting_owner(), name)
        version = remove_examples(session, d, example_ids=example_ids, query=query, expected_latest=expected_latest)
        removed, number, row_count, digest = version.counts["removed"], version.number, version.row_count, \
            version.content_hash
        if dry_run:
            session.rollback()
    if dry_run:
        console.print(f"{name}: would remove {removed} example(s) from version {number - 1}, leaving {row_count}; "
                      "nothing changed (--dry-run)", highlight=False)
        return
    console.print(f"{name} version {number}: {removed} example(s) removed, {row_count} left; sha256:{digest}",
                  highlight=False)
    with dataset_session(url) as session:  # the new version is handed off like a build's
        d = v.get_dataset(session, acting_owner(), name)
        job_id = version_handoff.queue(session, d, v.get_version(session, d.id, number), settings.core_config().defaults)
    run_followups(url, settings, job_ids=[job_id] if job_id is not None else [])
