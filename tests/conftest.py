"""Shared fixtures: real PostgreSQL, real Redis, and the real embedded model server.

Services come from the environment (`SPROUT_TEST_PG_ADMIN_URL`, `SPROUT_TEST_REDIS_URL`,
defaults: the local servers that `scripts/services.sh` starts). Each test session gets a
database of its own, created and dropped here, so runs never see each other's rows.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
REFERENCE_DIR = ROOT.parent / "shared" / "reference"
REFERENCE_SEEDS = REFERENCE_DIR / "self_instruct_seed_tasks.jsonl"
DEFAULT_SEEDS = ROOT / "seeds" / "default.jsonl"
MODEL_CACHE = Path(os.environ.get("SPROUT_TEST_MODEL_CACHE", Path.home() / ".cache" / "sprout"))

PG_ADMIN_URL = os.environ.get("SPROUT_TEST_PG_ADMIN_URL", "postgresql+psycopg://postgres:postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("SPROUT_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread():
    """Two torch threads on a busy 2-core machine are several times slower than one."""
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:  # pragma: no cover
        pass


@pytest.fixture(autouse=True)
def _isolated_settings(tmp_path, monkeypatch):
    """Each test gets its own data dir and a fresh settings cache."""
    from app.settings import get_settings

    monkeypatch.setenv("SPROUT_DATA_DIR", str(tmp_path / "sprout-data"))
    for key in list(os.environ):
        if key.startswith("SPROUT_") and key not in {"SPROUT_DATA_DIR"} and not key.startswith("SPROUT_TEST_"):
            monkeypatch.delenv(key, raising=False)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.fixture(scope="session")
def reference_seeds() -> Path:
    assert REFERENCE_SEEDS.is_file(), f"missing reference data: {REFERENCE_SEEDS}"
    return REFERENCE_SEEDS


@pytest.fixture
def sqlite_url(tmp_path) -> str:
    from app import db

    url = f"sqlite:///{tmp_path / 'test.db'}"
    db.upgrade(url)
    return url


@pytest.fixture(scope="session")
def pg_server_url() -> str:
    """A migrated PostgreSQL database of this test session's own."""
    from sqlalchemy import create_engine, text

    from app import db

    name = f"sprout_test_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    db.upgrade(url)
    yield url
    db.dispose_engines()
    with admin.connect() as conn:
        conn.execute(text(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'"))
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
    admin.dispose()


@pytest.fixture
def pg_url(pg_server_url) -> str:
    """The session's PostgreSQL database, emptied before each test."""
    from sqlalchemy import text

    from app import db

    with db.get_engine(pg_server_url).begin() as conn:
        conn.execute(
            text(
                "TRUNCATE api_keys, seed_sets, seed_tasks, jobs, instructions, instances, exports, "
                "datasets, dataset_versions, dataset_examples, dataset_hash_segments, dataset_tags, "
                "dataset_version_uses, schedule_fires, "
                "destinations, deliveries, delivery_attempts, webhooks, webhook_deliveries, webhook_attempts, "
                "dataset_destinations, dataset_training_runs, benchmark_sets, benchmark_items, example_scores, persona_sets, personas, topic_trees, example_reviews "
                "RESTART IDENTITY CASCADE"
            )
        )
    return pg_server_url


@pytest.fixture
def redis_url() -> str:
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    client.flushdb()
    yield REDIS_URL
    client.flushdb()
    client.close()


@pytest.fixture(scope="session")
def embedded_model_path() -> Path:
    from app.core.llm.embedded import bundled_model_path

    return bundled_model_path(MODEL_CACHE)


@pytest.fixture(scope="session")
def llm_base_url(embedded_model_path, tmp_path_factory) -> str:
    """The real embedded model (Gemma 3 270M on xllamacpp), one server per test session
    (or one already running, named by `SPROUT_TEST_LLM_URL`, shared by several sessions)."""
    from app.core.llm.embedded import EmbeddedServer

    if os.environ.get("SPROUT_TEST_LLM_URL"):
        yield os.environ["SPROUT_TEST_LLM_URL"]
        return

    server = EmbeddedServer(
        data_dir=tmp_path_factory.mktemp("llm"),
        model_path=embedded_model_path,
        parallel=4,
    )
    url = server.start()
    yield url
    server.stop()


@pytest.fixture(scope="session")
def chat_llm_base_url(tmp_path_factory) -> str:
    """The real embedded chat model (SmolLM2 135M Instruct on xllamacpp, its ChatML template
    from the GGUF), one server per test session (or `SPROUT_TEST_CHAT_LLM_URL`'s)."""
    from app.core.llm.embedded import CHAT_MODEL_ALIAS, EmbeddedServer

    if os.environ.get("SPROUT_TEST_CHAT_LLM_URL"):
        yield os.environ["SPROUT_TEST_CHAT_LLM_URL"]
        return

    server = EmbeddedServer(data_dir=tmp_path_factory.mktemp("chat-llm"), model=CHAT_MODEL_ALIAS, parallel=4, threads=1)
    url = server.start()
    yield url
    server.stop()
