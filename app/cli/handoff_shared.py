"""What `sprout handoff` (a job's data) and `sprout datasets check/bundle/deliver` (a dataset
version) share: the preflight's options, the check built from them, a destination looked up
by name, and how a preflight report and a delivery are printed."""

from __future__ import annotations

import json
from typing import Any

import typer
from rich.table import Table
from sqlmodel import select

from app.cli.common import CliError, console
from app.core.handoff import deliveries
from app.core.handoff.preflight import Preflight, PreflightOptions
from app.models import Delivery, Destination

TokenizerOpt = typer.Option(None, "--tokenizer", help="Tokenizer folder, GGUF or 'default' whose chat template the "
                            "check renders (default: SPROUT_HANDOFF__TOKENIZER, else SPROUT_TRAIN__BASE_MODEL).")
MaxLengthOpt = typer.Option(None, "--max-length", min=16, help="Token limit (default: SPROUT_HANDOFF__MAX_LENGTH, "
                            "else SPROUT_TRAIN__MAX_LENGTH).")


def build_preflight(settings: Any, tokenizer: str | None, max_length: int | None,
                    allow_truncated: bool | None) -> Preflight:
    """The preflight check the options ask for, with the settings' defaults; one CLI line when
    the tokenizer cannot be loaded."""
    from app.core.training.base_model import load_tokenizer

    config = settings.handoff_config()
    spec = tokenizer or str(config.tokenizer)
    try:
        loaded = load_tokenizer(spec, settings.core_config().model_cache_dir)
    except ValueError as exc:
        raise CliError(f"cannot load the tokenizer for the check: {exc}") from None
    options = PreflightOptions(max_length=max_length or config.max_length or settings.train.max_length,
                               allow_truncated=config.allow_truncated if allow_truncated is None else allow_truncated)
    return Preflight(loaded, options, template=spec)


def print_report(report: Any, as_json: bool) -> None:
    if as_json:
        console.print_json(json.dumps(report.as_dict(), default=str))
        return
    table = Table("check", "result", "rows")
    for check in report.checks:
        table.add_row(check.name, "pass" if check.ok else "[red]FAIL[/]", str(check.failures or check.warnings or ""))
    console.print(table)
    for problem in report.problems[:20]:
        console.print(f"  {problem}", highlight=False)
    if len(report.problems) > 20:
        console.print(f"  ... {len(report.problems) - 20} more listed in the report")
    console.print(report.summary(), highlight=False)


def find_destination(session: Any, name: str, required: bool = True) -> Destination | None:
    row = session.exec(select(Destination).where(Destination.owner.is_(None), Destination.name == name)).first()
    if row is None and required:
        raise CliError(f"no destination named {name!r} (add one with `sprout handoff destinations add`)")
    return row


def print_delivery(delivery: Delivery) -> None:
    where = delivery.location or "-"
    line = f"delivery {delivery.id}: {delivery.status} ({delivery.rows} rows, {delivery.label}) -> {where}"
    if delivery.status == deliveries.PENDING and delivery.next_attempt_at:
        line += f"; attempt {delivery.attempts} failed ({delivery.last_error}); next try at " \
                f"{delivery.next_attempt_at.isoformat(timespec='seconds')}"
    console.print(line, highlight=False)
    if delivery.status == deliveries.BLOCKED:
        for problem in (delivery.preflight or {}).get("problems", [])[:10]:
            console.print(f"  {problem['check']}: row {problem['index']} (id {problem['id']}): {problem['reason']}",
                          highlight=False)
