"""What every CLI module shares: one-line errors, settings, the database handle, and dataset references."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager

from pydantic import ValidationError
from rich.console import Console
from sqlmodel import Session

console = Console()
err_console = Console(stderr=True)


class CliError(Exception):
    """An error the user can fix; printed as one line, exit code 1 (or `code`)."""

    def __init__(self, message: str, code: int = 1):
        super().__init__(message)
        self.code = code


def fail(message: str, code: int = 1) -> None:
    err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    sys.exit(code)


def describe_validation_error(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "value"
        parts.append(f"{where}: {err['msg']}")
    return "; ".join(parts)


def load_settings():
    from app.settings import get_settings

    try:
        return get_settings()
    except ValidationError as exc:
        raise CliError(f"bad setting: {describe_validation_error(exc)}") from None
    except ValueError as exc:
        raise CliError(str(exc)) from None


def database_url(settings=None, migrate: bool = True) -> str:
    """The database URL, migrated if it is the embedded SQLite, else checked."""
    from sqlalchemy.exc import OperationalError

    from app import db
    from app.core.urls import redact

    settings = settings or load_settings()
    url = settings.resolved_database_url
    if migrate:
        try:
            db.ensure_database(url)
        except db.DatabaseNotMigrated as exc:
            raise CliError(str(exc)) from None
        except OperationalError as exc:
            raise CliError(f"cannot open the database at {redact(url)}: {exc.orig}") from None
    return url



@contextmanager
def dataset_session(url: str | None = None) -> Iterator[Session]:
    """A transaction; a datasets-core error rolls it back and becomes one CLI line."""
    from app.core.datasets.errors import DatasetError
    from app.db import session_scope

    try:
        with session_scope(url or database_url()) as session:
            yield session
    except DatasetError as exc:
        raise CliError(str(exc)) from None


def name_ref(value: str) -> tuple[str, str]:
    """"support-sft@prod" -> ("support-sft", "prod"); no "@" means the latest version."""
    from app.core.datasets.versions import LATEST_TAG

    name, sep, ref = value.partition("@")
    return name, (ref if sep and ref else LATEST_TAG)
