"""Database engine, sessions, and the migration check.

Every entry point opens the database through `get_engine()`. `check_migrated()` refuses a
database whose schema is not at the newest Alembic revision, so the API and the workers
never run against a schema they do not know. `upgrade()` is what `sprout db upgrade` runs.

One engine per URL *and per process*: a prefork worker opens the database in its main
process (the migration check, the reaper) and then forks its pool, and a pooled connection
inherited by two children is one socket driven by two processes (psycopg's
`DuplicatePreparedStatement`, broken transactions). A forked child therefore forgets the
engines it inherited, without closing their connections (they still belong to the parent),
and builds its own on first use.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, event
from sqlmodel import Session, create_engine

from app.core.urls import redact

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"


class DatabaseNotMigrated(RuntimeError):
    """The database schema is behind the code: run `sprout db upgrade`."""


# Connections one process opens at most, per database: the API admits this many requests
# at once (app/api/deps.py), and a worker's job uses a few.
POOL_SIZE = 10
POOL_OVERFLOW = 10
POOL_CAPACITY = POOL_SIZE + POOL_OVERFLOW
POOL_TIMEOUT_S = 10.0

_engines: dict[tuple[int, str], Engine] = {}
_engines_lock = threading.Lock()


def get_engine(url: str) -> Engine:
    """This process's engine for `url` (built on first use)."""
    key = (os.getpid(), url)
    engine = _engines.get(key)
    if engine is None:
        with _engines_lock:
            engine = _engines.get(key)
            if engine is None:
                engine = _engines[key] = _build_engine(url)
    return engine


def dispose_engines() -> None:
    """Close every engine this process built (tests drop databases after this)."""
    with _engines_lock:
        engines = [e for (pid, _), e in _engines.items() if pid == os.getpid()]
        _engines.clear()
    for engine in engines:
        engine.dispose()


def _forget_inherited_engines() -> None:
    """In a forked child: drop the parent's pools without closing the parent's connections."""
    global _engines_lock
    _engines_lock = threading.Lock()  # the parent may have held it while forking
    inherited = list(_engines.values())
    _engines.clear()
    for engine in inherited:
        engine.dispose(close=False)


os.register_at_fork(after_in_child=_forget_inherited_engines)


def _build_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        pool = {"pool_size": POOL_SIZE, "max_overflow": POOL_OVERFLOW, "pool_timeout": POOL_TIMEOUT_S} \
            if path and path != ":memory:" else {}
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30}, **pool)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:  # foreign keys and concurrent readers
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA journal_mode=WAL")
            cur.close()

        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=POOL_SIZE, max_overflow=POOL_OVERFLOW,
                         pool_timeout=POOL_TIMEOUT_S)


@contextmanager
def session_scope(url: str) -> Iterator[Session]:
    """A session that commits on success and rolls back on error."""
    with Session(get_engine(url), expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()


def current_revision(url: str) -> str | None:
    with get_engine(url).connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(url), revision)


def check_migrated(url: str) -> None:
    current, head = current_revision(url), head_revision()
    if current != head:
        raise DatabaseNotMigrated(
            f"the database at {redact(url)} is at schema revision {current or 'none'}, "
            f"the code needs {head}: run `sprout db upgrade`"
        )


def ensure_database(url: str) -> None:
    """Upgrade the embedded SQLite database in place; refuse any other un-migrated one.

    The embedded default should just work for `sprout generate`; a shared PostgreSQL is
    migrated deliberately by its operator with `sprout db upgrade`.
    """
    if url.startswith("sqlite") and current_revision(url) != head_revision():
        upgrade(url)
    check_migrated(url)
