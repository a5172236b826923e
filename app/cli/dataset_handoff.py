"""`sprout datasets check|bundle|deliver|handoff`: a dataset version handed to a training pipeline.

    sprout datasets check NAME[@REF]                 the preflight check (exit 1, rows named, when it fails)
    sprout datasets bundle NAME[@REF] --out DIR      every format, dataset_info.json, axolotl.yaml, the card
    sprout datasets deliver NAME[@REF] --to DEST     bundle, check, deliver (`v<N>`; `latest` moves forward)
    sprout datasets handoff NAME                     where new versions go, and their gated training
    sprout datasets handoff NAME --to DEST --train --param max_steps=200 --gate-tag prod
    sprout datasets handoff NAME@REF --now           hand a version off here and now (webhook, deliveries,
                                                     its gated training run, in this process)

A thin shell over `app.core.handoff`; destinations are those of `sprout handoff destinations`
(no owner); the dataset is the acting owner's (`sprout datasets --owner`, else the local owner's).
The commands join the `sprout datasets` group.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from app.cli.common import CliError, console, database_url, dataset_session, load_settings, name_ref
from app.cli.datasets import acting_owner
from app.cli.followups import run_followups
from app.cli.generate import parse_overrides
from app.cli.handoff_shared import (
    MaxLengthOpt,
    TokenizerOpt,
    build_preflight,
    find_destination,
    print_delivery,
    print_report,
)
from app.core.datasets import tags
from app.core.datasets import versions as v
from app.core.handoff import dataset_settings, deliveries, gate, sources
from app.core.handoff.bundle import BundleOptions, write_bundle
from app.core.handoff.formats import FORMATS
from app.core.jobs import version_handoff
from app.models import utcnow

# the gate's defaults, written once in `GateSettings`
GATE_TAG = dataset_settings.GateSettings.model_fields["tag"].default
DEFAULT_TOLERANCES = ", ".join(f"{metric}={value:g}" for metric, value in gate.DEFAULT_TOLERANCE.items())

TargetArg = typer.Argument(..., help="NAME or NAME@REF (a version number, latest or a tag; default latest).")


def _card(settings: Any) -> dict[str, Any]:
    config = settings.handoff_config()
    return {"license": config.license, "language": tuple(config.language), "model": settings.llm.model}


def check_cmd(
    target: str = TargetArg,
    tokenizer: str | None = TokenizerOpt,
    max_length: int | None = MaxLengthOpt,
    allow_truncated: bool | None = typer.Option(None, "--allow-truncated/--no-truncated",
                                                help="Let rows over max_length pass (they are still listed)."),
    as_json: bool = typer.Option(False, "--json", help="Print the whole report as JSON."),
) -> None:
    """Run the preflight check on a version: chat template, loss mask, max_length, empty fields."""
    settings = load_settings()
    name, ref = name_ref(target)
    preflight = build_preflight(settings, tokenizer, max_length, allow_truncated)
    with dataset_session(database_url(settings)) as session:
        dataset = v.get_dataset(session, acting_owner(), name)
        version = tags.resolve(session, dataset.id, ref)
        for row in sources.version_rows(session, dataset.id, version.number):
            preflight.add(row)
    report = preflight.finish()
    if not as_json:
        console.print(f"{name} version {version.number} ({version.row_count} rows)", highlight=False)
    print_report(report, as_json)
    if not report.ok:
        raise typer.Exit(1)


def bundle_cmd(
    target: str = TargetArg,
    out: Path = typer.Option(..., "--out", "-o", help="The bundle folder to create (must not exist)."),
    fmt: list[str] = typer.Option(None, "--format", "-f", help=f"Formats to write (repeat; default: all of "
                                  f"{', '.join(FORMATS)})."),
    system: str | None = typer.Option(None, "--system", help="A system prompt added to every row."),
    tokenizer: str | None = TokenizerOpt,
    max_length: int | None = MaxLengthOpt,
    check: bool = typer.Option(True, "--check/--no-check", help="Run the preflight check (needs the tokenizer)."),
) -> None:
    """Write a version's hand-off bundle: every format, dataset_info.json, axolotl.yaml, preflight.json, README.md."""
    settings = load_settings()
    config = settings.handoff_config()
    name, ref = name_ref(target)
    try:
        options = BundleOptions(formats=tuple(fmt or config.formats), rows_per_shard=config.rows_per_shard)
    except ValueError as exc:
        raise CliError(str(exc)) from None
    preflight = build_preflight(settings, tokenizer, max_length, None) if check else None
    with dataset_session(database_url(settings)) as session:
        dataset = v.get_dataset(session, acting_owner(), name)
        rows, meta = sources.dataset_version_source(session, dataset, ref, system=system, **_card(settings))
        try:
            bundle = write_bundle(rows, meta, out, options, preflight)
        except FileExistsError as exc:
            raise CliError(str(exc)) from None
        except OSError as exc:
            raise CliError(f"cannot write {out}: {exc.strerror or exc}") from None
    for written in bundle.files:
        console.print(f"  {written.name:<26} {written.format:<18} {written.rows} rows", highlight=False)
    console.print(f"wrote the bundle of {name} version {meta.version} ({bundle.stats.rows} rows) to {out}",
                  highlight=False)
    if bundle.preflight is not None:
        console.print(bundle.preflight.summary(), highlight=False)
        if not bundle.preflight.ok:
            for problem in bundle.preflight.problems[:10]:
                console.print(f"  {problem}", highlight=False)
            raise CliError(f"the bundle is written, but its preflight check failed (see {out / 'preflight.json'})")


def deliver_cmd(
    target: str = TargetArg,
    to: str = typer.Option(..., "--to", help="A destination's name (`sprout handoff destinations add`)."),
    system: str | None = typer.Option(None, "--system", help="A system prompt added to every row."),
    tokenizer: str | None = TokenizerOpt,
    max_length: int | None = MaxLengthOpt,
) -> None:
    """Bundle a version, check it, and deliver it (a folder gets <name>/v<N>; `latest` moves forward)."""
    settings = load_settings()
    name, ref = name_ref(target)
    preflight = build_preflight(settings, tokenizer, max_length, None)
    with dataset_session(database_url(settings)) as session:
        destination = find_destination(session, to)
        dataset = v.get_dataset(session, acting_owner(), name)
        rows, meta = sources.dataset_version_source(session, dataset, ref, system=system, **_card(settings))
        delivery = deliveries.deliver(session, destination, rows, meta, preflight, settings.handoff_config(),
                                      Path(settings.data_dir), utcnow())
    print_delivery(delivery)
    if delivery.status in (deliveries.BLOCKED, deliveries.FAILED):
        raise CliError(f"delivery {delivery.id} {delivery.status}: {delivery.last_error}")


def _tolerances(items: list[str]) -> dict[str, float]:
    out: dict[str, float] = {}
    for item in items:
        key, _, value = item.partition("=")
        if key not in gate.METRICS:
            raise CliError(f"--tolerance {item}: the metric must be one of {', '.join(gate.METRICS)}")
        try:
            out[key] = float(value)
        except ValueError:
            raise CliError(f"--tolerance {item}: not a number") from None
    return out


def handoff_cmd(
    target: str = typer.Argument(..., help="NAME (its settings), or NAME@REF with --now."),
    to: list[str] = typer.Option([], "--to", help="A destination each new version is delivered to (repeat; "
                                 "replaces the list)."),
    no_destinations: bool = typer.Option(False, "--no-destinations", help="Deliver new versions nowhere."),
    train: bool | None = typer.Option(None, "--train/--no-train", help="Train each new version and gate a tag on "
                                      "the result (replaces the training settings), or stop training."),
    param: list[str] = typer.Option([], "--param", "-p", help="With --train: a trainer parameter, key=value "
                                    "(repeat), e.g. base_model=PATH, max_steps=200."),
    gate_tag: str = typer.Option(GATE_TAG, "--gate-tag", help="With --train: the tag a run that is not worse moves."),
    tolerance: list[str] = typer.Option([], "--tolerance", help="With --train: metric=value, e.g. "
                                        f"eval_loss_after=0.05 (defaults: {DEFAULT_TOLERANCES})."),
    eval_file: Path | None = typer.Option(None, "--eval-file", help="With --train: the evaluation tasks every run "
                                          "is scored on (a seed file); default: the recipe's seed sets' instances."),
    now: bool = typer.Option(False, "--now", help="Hand the version NAME@REF off here and now: its webhook, its "
                             "deliveries, its gated training run (what was done already is not done twice)."),
    as_json: bool = typer.Option(False, "--json", help="Print the settings as JSON."),
) -> None:
    """Where a dataset's new versions go and whether they train a gated model; or hand one off now."""
    settings = load_settings()
    url = database_url(settings)
    name, sep, ref = target.partition("@")
    if now:
        _handoff_now(url, settings, name, ref or v.LATEST_TAG)
        return
    if sep:
        raise CliError("NAME@REF goes with --now; the settings are the dataset's (give NAME)")
    if not train and (param or tolerance or eval_file is not None or gate_tag != GATE_TAG):
        raise CliError("--param, --gate-tag, --tolerance and --eval-file go with --train")
    if to and no_destinations:
        raise CliError("give --to or --no-destinations, not both")
    tasks = dataset_settings.tasks_from_file(eval_file) if train and eval_file is not None else None
    with dataset_session(url) as session:
        dataset = v.get_dataset(session, acting_owner(), name)
        if to or no_destinations:
            ids = [find_destination(session, d).id for d in to]
            dataset_settings.set_destinations(session, dataset, ids)
        if train is False:
            dataset_settings.clear_training(session, dataset)
        elif train:
            try:
                gate_settings = dataset_settings.GateSettings(tag=gate_tag, tolerance=_tolerances(tolerance))
            except ValueError as exc:
                raise CliError(f"--gate-tag/--tolerance: {exc}") from None
            dataset_settings.set_training(
                session, dataset, params=parse_overrides(param), gate=gate_settings, data_dir=Path(settings.data_dir),
                eval_tasks=tasks, eval_source=f"file {eval_file}" if eval_file else None,
                defaults=settings.core_config().defaults.get("train", {}))
        described = dataset_settings.describe(session, dataset)
    if as_json:
        print(json.dumps(described, indent=2))
        return
    print_settings(name, described)


def print_settings(name: str, described: dict[str, Any]) -> None:
    dests = ", ".join(f"{d['name']} ({d['kind']})" for d in described["destinations"]) or "none"
    console.print(f"[bold]{name}: new versions are delivered to:[/] {dests}", highlight=False)
    training = described["training"]
    if training is None:
        console.print("[bold]training on new versions:[/] off", highlight=False)
        return
    g, e = training["gate"], training["eval"]
    console.print(f"[bold]training on new versions:[/] params {json.dumps(training['params'])}; gate tag "
                  f"{g['tag']}, tolerance " + ", ".join(f"{k}={t}" for k, t in g["tolerance"].items()), highlight=False)
    console.print(f"[bold]evaluation tasks:[/] {e['tasks']} from {e['source']}, sha256 {e['sha256'][:16]}… "
                  f"({e['path']})", highlight=False)


def _handoff_now(url: str, settings: Any, name: str, ref: str) -> None:
    with dataset_session(url) as session:
        dataset = v.get_dataset(session, acting_owner(), name)
        version = tags.resolve(session, dataset.id, ref)
        job_id = version_handoff.queue(session, dataset, version, settings.core_config().defaults, force=True)
    run_followups(url, settings, job_ids=[job_id])


def register(app: typer.Typer) -> None:
    app.command("check")(check_cmd)
    app.command("bundle")(bundle_cmd)
    app.command("deliver")(deliver_cmd)
    app.command("handoff")(handoff_cmd)
