"""`sprout handoff`: check, bundle and deliver a job's data for a training pipeline.

    sprout handoff check JOB                     the preflight check alone (exit 1 when it fails)
    sprout handoff bundle JOB --out DIR          every format, dataset_info.json, axolotl.yaml, the card
    sprout handoff destinations add NAME --folder PATH | --hub OWNER/REPO
    sprout handoff deliver JOB --to NAME         bundle, check, deliver (retried by `sprout beat`)
    sprout handoff deliveries                    what was delivered, and what waits for a retry
    sprout handoff retry                         attempt due deliveries and webhooks now
    sprout handoff compare OLD.json NEW.json     the promotion gate's comparison of two runs' metrics
    sprout handoff webhooks add URL --event E    a signed webhook (its secret printed once); list, remove

The destinations, deliveries and webhooks made here have no owner (like jobs and datasets
made by the CLI), so they serve the CLI's datasets and jobs.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from rich.table import Table
from sqlmodel import select

from app.cli.common import CliError, console, database_url, load_settings
from app.cli.handoff_shared import (
    MaxLengthOpt,
    TokenizerOpt,
    build_preflight,
    find_destination,
    print_delivery,
    print_report,
)
from app.core import store
from app.core.handoff import deliveries, destinations, gate, retry, sources, webhooks
from app.core.handoff.bundle import BundleOptions, write_bundle
from app.core.handoff.formats import FORMATS
from app.db import session_scope
from app.models import Delivery, Destination, Job, JobStatus, Webhook, utcnow

app = typer.Typer(help="Check, bundle and deliver a job's data to a training pipeline.", no_args_is_help=True)
destinations_app = typer.Typer(help="Where bundles go: folders and Hugging Face Hub repos.", no_args_is_help=True)
app.add_typer(destinations_app, name="destinations")
webhooks_app = typer.Typer(help="Signed webhooks: version_created, delivery_done, training_finished, job_finished.",
                           no_args_is_help=True)
app.add_typer(webhooks_app, name="webhooks")

def _source(session: Any, settings: Any, job_id: int, final_only: bool, roots: bool, name: str | None = None,
            system: str | None = None) -> tuple[list[dict[str, Any]], Any]:
    config = settings.handoff_config()
    try:
        return sources.job_source(session, job_id, final_only=final_only, include_roots=roots, name=name,
                                  system=system, license=config.license, language=tuple(config.language),
                                  model=settings.llm.model)
    except (store.NotFound, ValueError) as exc:
        raise CliError(str(exc)) from None


@app.command("check")
def check_cmd(
    job_id: int = typer.Argument(..., help="The job whose curated data to check."),
    tokenizer: str | None = TokenizerOpt,
    max_length: int | None = MaxLengthOpt,
    allow_truncated: bool | None = typer.Option(None, "--allow-truncated/--no-truncated",
                                                help="Let rows over max_length pass (they are still listed)."),
    final_only: bool = typer.Option(False, "--final-only", help="Evol-Instruct: each lineage's last generation only."),
    roots: bool = typer.Option(True, "--roots/--no-roots", help="Evol-Instruct: include round 0."),
    as_json: bool = typer.Option(False, "--json", help="Print the whole report as JSON."),
) -> None:
    """Run the preflight check on a job's rows: chat template, loss mask, max_length, empty fields."""
    settings = load_settings()
    with session_scope(database_url(settings)) as session:
        rows, _ = _source(session, settings, job_id, final_only, roots)
    preflight = build_preflight(settings, tokenizer, max_length, allow_truncated)
    for row in rows:
        preflight.add(row)
    report = preflight.finish()
    print_report(report, as_json)
    if not report.ok:
        raise typer.Exit(1)


@app.command("bundle")
def bundle_cmd(
    job_id: int = typer.Argument(..., help="The job whose curated data to bundle."),
    out: Path = typer.Option(..., "--out", "-o", help="The bundle folder to create (must not exist)."),
    name: str | None = typer.Option(None, "--name", help="The dataset's name (default: sprout-job-<id>)."),
    fmt: list[str] = typer.Option(None, "--format", "-f", help=f"Formats to write (repeat; default: all of {', '.join(FORMATS)})."),
    system: str | None = typer.Option(None, "--system", help="A system prompt added to every row."),
    tokenizer: str | None = TokenizerOpt,
    max_length: int | None = MaxLengthOpt,
    check: bool = typer.Option(True, "--check/--no-check", help="Run the preflight check (needs the tokenizer)."),
    final_only: bool = typer.Option(False, "--final-only", help="Evol-Instruct: each lineage's last generation only."),
    roots: bool = typer.Option(True, "--roots/--no-roots", help="Evol-Instruct: include round 0."),
) -> None:
    """Write a hand-off bundle: every format, dataset_info.json, axolotl.yaml, preflight.json, README.md."""
    settings = load_settings()
    config = settings.handoff_config()
    try:
        options = BundleOptions(formats=tuple(fmt or config.formats), rows_per_shard=config.rows_per_shard)
    except ValueError as exc:
        raise CliError(str(exc)) from None
    with session_scope(database_url(settings)) as session:
        rows, meta = _source(session, settings, job_id, final_only, roots, name=name, system=system)
    preflight = build_preflight(settings, tokenizer, max_length, None) if check else None
    try:
        bundle = write_bundle(rows, meta, out, options, preflight)
    except FileExistsError as exc:
        raise CliError(str(exc)) from None
    except OSError as exc:
        raise CliError(f"cannot write {out}: {exc.strerror or exc}") from None
    for written in bundle.files:
        console.print(f"  {written.name:<26} {written.format:<18} {written.rows} rows", highlight=False)
    console.print(f"wrote the bundle of job {job_id} ({bundle.stats.rows} rows) to {out}", highlight=False)
    if bundle.preflight is not None:
        console.print(bundle.preflight.summary(), highlight=False)
        if not bundle.preflight.ok:
            for problem in bundle.preflight.problems[:10]:
                console.print(f"  {problem}", highlight=False)
            raise CliError(f"the bundle is written, but its preflight check failed (see {out / 'preflight.json'})")


@destinations_app.command("add")
def destination_add(
    name: str = typer.Argument(..., help="A name to deliver to (`--to NAME`)."),
    folder: Path | None = typer.Option(None, "--folder", help="A folder (bundles land in FOLDER/<dataset>/<label>)."),
    hub: str | None = typer.Option(None, "--hub", help="A Hugging Face Hub dataset repo, owner/name."),
    public: bool = typer.Option(False, "--public", help="Hub: create the repo public (default: private)."),
    mode: str | None = typer.Option(None, "--mode", help="Folder: the delivered files' octal mode, e.g. 640 "
                                    "(default: the umask's)."),
) -> None:
    """Add a destination (the Hub token is SPROUT_HANDOFF__HUB_TOKEN)."""
    if (folder is None) == (hub is None):
        raise CliError("give exactly one of --folder or --hub")
    kind, config = ("folder", {"path": str(folder.expanduser().resolve()), "mode": mode}) if folder is not None \
        else ("hub", {"repo_id": hub, "private": not public})
    try:
        config = destinations.check_config(kind, config)
    except ValueError as exc:
        raise CliError(str(exc)) from None
    with session_scope(database_url()) as session:
        if find_destination(session, name, required=False) is not None:
            raise CliError(f"a destination named {name!r} exists already")
        session.add(Destination(owner=None, name=name, kind=kind, config=config))
    console.print(f"destination {name}: {kind} {config}", highlight=False)


@destinations_app.command("list")
def destination_list() -> None:
    """List the destinations made with the CLI."""
    with session_scope(database_url()) as session:
        rows = session.exec(select(Destination).where(Destination.owner.is_(None)).order_by(Destination.id)).all()
        table = Table("id", "name", "kind", "config")
        for row in rows:
            table.add_row(str(row.id), row.name, row.kind, json.dumps(row.config))
    console.print(table)


@destinations_app.command("remove")
def destination_remove(name: str = typer.Argument(...)) -> None:
    """Remove a destination (and its delivery records)."""
    with session_scope(database_url()) as session:
        session.delete(find_destination(session, name))
    console.print(f"removed destination {name}")


@app.command("deliver")
def deliver_cmd(
    job_id: int = typer.Argument(..., help="The job whose curated data to deliver."),
    to: str = typer.Option(..., "--to", help="A destination's name."),
    name: str | None = typer.Option(None, "--name", help="The dataset's name (default: sprout-job-<id>)."),
    system: str | None = typer.Option(None, "--system", help="A system prompt added to every row."),
    tokenizer: str | None = TokenizerOpt,
    max_length: int | None = MaxLengthOpt,
    final_only: bool = typer.Option(False, "--final-only", help="Evol-Instruct: each lineage's last generation only."),
    roots: bool = typer.Option(True, "--roots/--no-roots", help="Evol-Instruct: include round 0."),
) -> None:
    """Bundle a job, check it, and deliver it; a failed attempt is retried later by `sprout beat`."""
    settings = load_settings()
    url = database_url(settings)
    preflight = build_preflight(settings, tokenizer, max_length, None)
    with session_scope(url) as session:
        destination = find_destination(session, to)
        job = session.get(Job, job_id)
        if job is None:
            raise CliError(f"no job with id {job_id}")
        if not JobStatus(job.status).finished:
            raise CliError(f"job {job_id} is {job.status}; deliver it once it has finished")
        rows, meta = _source(session, settings, job_id, final_only, roots, name=name, system=system)
        delivery = deliveries.deliver(session, destination, rows, meta, preflight, settings.handoff_config(),
                                      Path(settings.data_dir), utcnow())
    print_delivery(delivery)
    if delivery.status in (deliveries.BLOCKED, deliveries.FAILED):
        raise CliError(f"delivery {delivery.id} {delivery.status}: {delivery.last_error}")


@app.command("deliveries")
def deliveries_cmd(as_json: bool = typer.Option(False, "--json")) -> None:
    """List the CLI's deliveries, newest first."""
    with session_scope(database_url()) as session:
        rows = session.exec(select(Delivery).where(Delivery.owner.is_(None)).order_by(Delivery.id.desc()).limit(100)).all()
        data = [deliveries.describe(r, session.get(Destination, r.destination_id)) | {"last_error": r.last_error}
                for r in rows]
    if as_json:
        console.print_json(json.dumps(data, default=str))
        return
    table = Table("id", "status", "source", "label", "destination", "rows", "attempts", "location / error")
    for d in data:
        table.add_row(str(d["id"]), d["status"], f"{d['source']['kind']} {d['source']['id']}", d["label"],
                      (d["destination"] or {}).get("name", "-"), str(d["rows"]), str(d["attempts"]),
                      d["location"] or d["last_error"] or "")
    console.print(table)


@app.command("retry")
def retry_cmd() -> None:
    """Attempt every due delivery and webhook now (what `sprout beat` does periodically)."""
    settings = load_settings()
    with session_scope(database_url(settings)) as session:
        summary = retry.retry_due(session, utcnow(), settings.handoff_config())
    console.print(f"deliveries tried: {summary.deliveries or 'none'}; webhooks tried: {summary.webhooks or 'none'}",
                  highlight=False)


@app.command("compare")
def compare_cmd(
    previous: Path = typer.Argument(..., help="The previous run's metrics.json."),
    new: Path = typer.Argument(..., help="The new run's metrics.json."),
    tolerance: list[str] = typer.Option(None, "--tolerance", help="metric=value (absolute), e.g. "
                                        "eval_loss_after=0.05; default: eval_loss_after=0.05, rouge_l_after=0.01."),
) -> None:
    """Would the new run be promoted over the previous one? (exit 1 when it would not)"""
    metrics = []
    for path in (previous, new):
        try:
            metrics.append(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError) as exc:
            raise CliError(f"{path}: cannot read metrics ({exc})") from None
    tolerances = dict(gate.DEFAULT_TOLERANCE)
    for item in tolerance or []:
        key, _, value = item.partition("=")
        if key not in gate.METRICS:
            raise CliError(f"--tolerance {item}: the metric must be one of {', '.join(gate.METRICS)}")
        try:
            tolerances[key] = float(value)
        except ValueError:
            raise CliError(f"--tolerance {item}: not a number") from None
    try:
        promote, table = gate.compare_runs(metrics[0], metrics[1], tolerances)
    except ValueError as exc:
        raise CliError(str(exc)) from None
    out = Table("metric", "previous", "new", "delta", "better", "tolerance", "verdict")
    for row in table:
        out.add_row(*(str(row[k]) if row[k] is not None else "-" for k in
                      ("metric", "previous", "new", "delta", "better", "tolerance", "verdict")))
    console.print(out)
    console.print("promote" if promote else "hold: the new run is worse", highlight=False)
    if not promote:
        raise typer.Exit(1)


@webhooks_app.command("add")
def webhook_add(
    url: str = typer.Argument(..., help="An http(s) URL that receives the events as signed JSON POSTs."),
    event: list[str] = typer.Option(..., "--event", "-e", help=f"An event (repeat): {', '.join(webhooks.EVENTS)}."),
    secret: str | None = typer.Option(None, "--secret", help="The signing secret (default: generated)."),
) -> None:
    """Add a webhook for the CLI's datasets and jobs; its secret is printed once."""
    try:
        url, events = webhooks.check_url(url), webhooks.check_events(event)
    except ValueError as exc:
        raise CliError(str(exc)) from None
    if secret is not None and len(secret) < 16:
        raise CliError("--secret: at least 16 characters")
    with session_scope(database_url()) as session:
        row = Webhook(owner=None, url=url, secret=secret or webhooks.new_secret(), events=events)
        session.add(row)
        session.flush()
        ident, key = row.id, row.secret
    console.print(f"webhook {ident}: {url} ({', '.join(events)}); secret (shown once): {key}", highlight=False)


@webhooks_app.command("list")
def webhook_list() -> None:
    """The CLI's webhooks, with the status of their last deliveries."""
    with session_scope(database_url()) as session:
        rows = session.exec(select(Webhook).where(Webhook.owner.is_(None)).order_by(Webhook.id)).all()
        table = Table("id", "url", "events", "active")
        for row in rows:
            table.add_row(str(row.id), row.url, ", ".join(row.events), str(row.active))
    console.print(table)


@webhooks_app.command("remove")
def webhook_remove(webhook_id: int = typer.Argument(...)) -> None:
    """Remove a webhook (and its delivery records)."""
    with session_scope(database_url()) as session:
        row = session.get(Webhook, webhook_id) if 1 <= webhook_id <= 2**31 - 1 else None
        if row is None or row.owner is not None:
            raise CliError(f"no webhook with id {webhook_id}")
        session.delete(row)
    console.print(f"removed webhook {webhook_id}")
