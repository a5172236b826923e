"""`sprout db ...`: schema migrations."""

from __future__ import annotations

import typer

from app.cli.common import CliError, console, load_settings

app = typer.Typer(help="The database schema.", no_args_is_help=True)


@app.command("upgrade")
def upgrade(revision: str = typer.Argument("head", help="Target revision.")) -> None:
    """Migrate the database (SPROUT_DATABASE_URL) to the newest schema."""
    from sqlalchemy.exc import OperationalError

    from app import db
    from app.core.urls import redact

    url = load_settings().resolved_database_url
    try:
        db.upgrade(url, revision)
    except OperationalError as exc:
        raise CliError(f"cannot open the database at {redact(url)}: {exc.orig}") from None
    console.print(f"database {redact(url)} is at revision {db.current_revision(url)}")


@app.command("current")
def current() -> None:
    """Print the database's schema revision and the code's."""
    from app import db

    url = load_settings().resolved_database_url
    console.print(f"database: {db.current_revision(url) or 'none'}; code: {db.head_revision()}")
