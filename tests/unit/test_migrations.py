"""The models and the Alembic migrations must describe the same schema."""

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlmodel import SQLModel

import app.models  # noqa: F401
from app import db


def _diff(url):
    with db.get_engine(url).connect() as conn:
        return compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), SQLModel.metadata)


def test_sqlite_migrations_match_models(sqlite_url):
    assert _diff(sqlite_url) == []
    assert db.current_revision(sqlite_url) == db.head_revision()


def test_postgres_migrations_match_models(pg_server_url):
    assert _diff(pg_server_url) == []


def test_unmigrated_database_is_refused(tmp_path):
    import pytest

    url = f"sqlite:///{tmp_path / 'empty.db'}"
    with pytest.raises(db.DatabaseNotMigrated, match="sprout db upgrade"):
        db.check_migrated(url)


def test_single_head():
    from alembic.script import ScriptDirectory

    assert len(ScriptDirectory.from_config(db.alembic_config("sqlite://")).get_heads()) == 1
