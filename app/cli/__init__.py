"""The `sprout` command: a thin Typer shell over the domain core and its jobs layer.

Each sub-command group lives in its own module; errors the user can fix are printed as
one line (`CliError`, or any core error: `app.core.errors.SproutError`) with a non-zero
exit, never as a traceback.
"""

from __future__ import annotations

import signal
import sys

import typer

from app.cli import (
    dataset_handoff,
    datasets,
    dbcmd,
    diversity,
    docs,
    export,
    filter,
    generate,
    handoff,
    jobs,
    model,
    personas,
    score,
    service,
    topics,
    train,
)
from app.cli.common import CliError, fail
from app.core.errors import SproutError

cli = typer.Typer(
    name="sprout",
    help="Grow seed tasks into a curated instruction dataset, and fine-tune a model on it.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
generate.register(cli)
export.register(cli)
diversity.register(cli)
score.register(cli)
cli.add_typer(jobs.app, name="jobs")
cli.add_typer(model.app, name="model")
cli.add_typer(dbcmd.app, name="db")
cli.add_typer(filter.app, name="filter")
cli.add_typer(personas.app, name="personas")
cli.add_typer(topics.app, name="topics")
dataset_handoff.register(datasets.app)
cli.add_typer(datasets.app, name="datasets")
cli.add_typer(handoff.app, name="handoff")
train.register(cli)
service.register(cli)
docs.register(cli)


def _terminate(*_: object) -> None:
    raise KeyboardInterrupt  # unwind `with` blocks: child servers stop, batches commit


def main() -> None:
    signal.signal(signal.SIGTERM, _terminate)
    try:
        cli()
    except CliError as exc:
        fail(str(exc))
    except SproutError as exc:  # any core error a command did not word itself: one line, never a traceback
        fail(str(exc))
    except KeyboardInterrupt:
        fail("interrupted", code=130)


if __name__ == "__main__":
    main()
    sys.exit(0)
