"""`sprout api`, `sprout worker`, `sprout beat`, `sprout apikey ...`: the service's processes.

Each process checks the database first (`database_url`: the embedded SQLite is migrated in
place, any other database must be at the newest schema), so a forgotten
`sprout db upgrade` is one clear line and a non-zero exit, not a crash loop.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.table import Table

from app.cli.common import CliError, console, database_url, load_settings
from app.core import jobs

QUEUE_NAMES = tuple(jobs.queues())  # each job kind names its queue in the registry
POOLS = ("prefork", "solo", "threads")

apikey = typer.Typer(help="API keys: create, list, revoke.", no_args_is_help=True)


def api(
    host: str = typer.Option(None, "--host", help="Address to listen on (default SPROUT_API_HOST, 127.0.0.1)."),
    port: int = typer.Option(None, "--port", help="Port to listen on (default SPROUT_API_PORT, 8000)."),
    workers: int = typer.Option(1, "--workers", min=1, max=64, help="Server processes."),
    log_level: str = typer.Option("info", "--log-level", help="debug, info, warning, error."),
) -> None:
    """Serve the HTTP API (and the dashboard at /dashboard)."""
    import uvicorn

    settings = load_settings()
    database_url(settings)  # refuses an un-migrated database with its message
    uvicorn.run("app.asgi:create_app", factory=True, host=host or settings.api_host,
                port=port or settings.api_port, workers=workers, log_level=log_level)


def worker(
    queues: str = typer.Option(",".join(QUEUE_NAMES), "--queues", "-Q",
                               help=f"Comma-separated queues to take jobs from: {', '.join(QUEUE_NAMES)}."),
    concurrency: int = typer.Option(None, "--concurrency", "-c", min=1, max=64,
                                    help="Jobs at once (default SPROUT_WORKER_CONCURRENCY)."),
    pool: str = typer.Option("prefork", "--pool", "-P", help="prefork (a process per job), solo or threads."),
    hostname: str = typer.Option(None, "--hostname", "-n", help="Worker name (default celery@<host>)."),
    log_level: str = typer.Option("info", "--log-level", help="debug, info, warning, error."),
) -> None:
    """Run jobs from the queues (a Celery worker)."""
    names = [q.strip() for q in queues.split(",") if q.strip()]
    unknown = [q for q in names if q not in QUEUE_NAMES]
    if not names or unknown:
        raise CliError(f"unknown queue(s) {', '.join(unknown) or '(none given)'}; use {', '.join(QUEUE_NAMES)}")
    if pool not in POOLS:
        raise CliError(f"unknown pool {pool!r}; use {', '.join(POOLS)}")
    settings = load_settings()
    database_url(settings)
    from workers.celery_app import MAINTENANCE_QUEUE, app

    # every worker also takes the reaper's messages, whatever its job queues
    argv = ["worker", f"--queues={','.join([*names, MAINTENANCE_QUEUE])}", f"--concurrency={concurrency or settings.worker_concurrency}",
            f"--pool={pool}", f"--loglevel={log_level.upper()}", "--without-gossip", "--without-mingle"]
    if hostname:
        argv.append(f"--hostname={hostname}")
    app.worker_main(argv)


def beat(
    schedule: Path = typer.Option(None, "--schedule", help="Beat's state file (default <data_dir>/celerybeat-schedule)."),
    log_level: str = typer.Option("info", "--log-level", help="debug, info, warning, error."),
) -> None:
    """Send periodic tasks: the reaper, every SPROUT_REAPER_INTERVAL_S seconds."""
    settings = load_settings()
    database_url(settings)
    from workers.celery_app import app

    state = schedule or Path(settings.data_dir) / "celerybeat-schedule"
    state.parent.mkdir(parents=True, exist_ok=True)
    app.start(["beat", f"--schedule={state}", f"--loglevel={log_level.upper()}"])


@apikey.command("create")
def apikey_create(
    name: str = typer.Option(..., "--name", help="What the key is for (e.g. a person or a service)."),
    owner: str = typer.Option(None, "--owner", help="Whose resources it sees (default: the name)."),
) -> None:
    """Make an API key and print it (once: only its hash is stored)."""
    from app.api import keys
    from app.db import session_scope

    if not name.strip() or len(name) > 200 or (owner is not None and (not owner.strip() or len(owner) > 200)):
        raise CliError("--name and --owner must be 1 to 200 characters")
    with session_scope(database_url()) as session:
        row, key = keys.create_key(session, name.strip(), owner.strip() if owner else None)
        key_id, key_owner = row.id, row.owner
    console.print(f"API key {key_id} ({name}, owner {key_owner}); it is shown only this once:", highlight=False)
    print(key)


@apikey.command("list")
def apikey_list(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """The keys (id, name, owner, prefix, created, revoked); never the keys themselves."""
    from app.api import keys
    from app.db import session_scope

    with session_scope(database_url()) as session:
        rows = [r.model_dump(mode="json", exclude={"key_hash"}) for r in keys.list_keys(session)]
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    table = Table("id", "name", "owner", "prefix", "created", "revoked")
    for r in rows:
        table.add_row(str(r["id"]), r["name"], r["owner"], r["prefix"] + "…", r["created_at"][:19], (r["revoked_at"] or "")[:19])
    console.print(table)


@apikey.command("revoke")
def apikey_revoke(ref: str = typer.Argument(..., help="The key's id or prefix (see `sprout apikey list`).")) -> None:
    """Revoke a key: requests with it get 401 from now on."""
    from app.api import keys
    from app.db import session_scope

    with session_scope(database_url()) as session:
        row = keys.revoke(session, ref.strip())
        if row is None:
            raise CliError(f"no API key with id or prefix {ref!r}")
        key_id = row.id
    console.print(f"API key {key_id} revoked")


def register(cli: typer.Typer) -> None:
    """Adds the service commands."""
    cli.command("api")(api)
    cli.command("worker")(worker)
    cli.command("beat")(beat)
    cli.add_typer(apikey, name="apikey")
