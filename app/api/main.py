"""The API's app factory: `create_app(settings, dispatcher)`; served as `app/asgi.py`'s
(`uvicorn --factory app.asgi:create_app`), which gives it the Celery dispatcher.

At startup the app refuses an un-migrated database (`db.check_migrated`), so it never
serves a schema it does not know; `sprout api` runs the same check first and exits with
its message. Routes live under `/api/v1` (one router per resource, each requiring an API
key); `/healthz`, `/readyz`, the OpenAPI document, `/docs` and the dashboard page are open.
The documentation site, once built into `site/` (`sprout docs --build`), is served at
`/docs/site/`, open as well.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.staticfiles import StaticFiles
from pydantic.json_schema import models_json_schema

from app.api import errors
from app.api.deps import get_current_key, reserve_threads
from app.api.routes import (
    benchmark_sets,
    dashboard,
    dataset_handoff,
    dataset_reviews,
    datasets,
    deliveries,
    destinations,
    diversity,
    exports,
    health,
    insights,
    jobs,
    kinds,
    me,
    metrics,
    persona_sets,
    results,
    seed_sets,
    topic_trees,
    webhooks,
)
from app.api.schemas.common import ERROR_RESPONSES
from app.api.schemas.datasets import RECIPE_EXAMPLE
from app.api.schemas.seed_sets import SeedSetCreate
from app.core.datasets.recipe import Recipe
from app.core.jobs.dispatch import Dispatcher, NoDispatcher
from app.db import check_migrated
from app.settings import Settings, settings_or_exit

log = logging.getLogger("sprout.api")

API_PREFIX = "/api/v1"
DOCS_SITE = Path(__file__).resolve().parents[2] / "site"  # `sprout docs --build` writes it
DESCRIPTION = """Grow seed tasks into a curated instruction-tuning dataset, and fine-tune a model on it.

Authenticate with an API key (`sprout apikey create`): `Authorization: Bearer <key>`.
Errors are `{"detail": "..."}` naming what is wrong and where (validation errors add `errors`)."""


def create_app(settings: Settings | None = None,
               dispatcher: Callable[[Settings], Dispatcher] | None = None) -> FastAPI:
    """The app; `dispatcher(settings)` makes where new jobs are sent (without one, every job
    is refused with a 503: enough for the OpenAPI document and the docs)."""
    settings = settings or settings_or_exit()

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        check_migrated(settings.resolved_database_url)  # raises DatabaseNotMigrated: startup fails
        reserve_threads()
        yield

    app = FastAPI(title="Sprout", version="1", description=DESCRIPTION, lifespan=lifespan)
    app.state.settings = settings
    app.state.dispatcher = dispatcher(settings) if dispatcher is not None else NoDispatcher()
    errors.install(app)

    app.include_router(health.router)
    app.include_router(dashboard.router)
    app.include_router(metrics.router)
    authenticated = [Depends(get_current_key)]
    for module in (seed_sets, persona_sets, topic_trees, benchmark_sets, jobs, results, insights, diversity, exports, kinds,
                   datasets, dataset_reviews, dataset_handoff, destinations, deliveries, webhooks, me):
        app.include_router(module.router, prefix=API_PREFIX, dependencies=authenticated, responses=ERROR_RESPONSES)
    if (DOCS_SITE / "index.html").is_file():
        app.mount("/docs/site", StaticFiles(directory=DOCS_SITE, html=True), name="docs-site")
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app


def _openapi(app: FastAPI) -> dict[str, Any]:
    """The generated schema, plus the bodies routes parse by hand: the seed-set upload, and a
    dataset's recipe (validated by the core so that each error names its field path)."""
    if app.openapi_schema is None:
        schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
        _, defs = models_json_schema([(SeedSetCreate, "validation"), (Recipe, "validation")],
                                     ref_template="#/components/schemas/{model}")
        schema.setdefault("components", {}).setdefault("schemas", {}).update(defs.get("$defs", {}))
        schema["components"]["schemas"]["Recipe"].setdefault("examples", [RECIPE_EXAMPLE])
        app.openapi_schema = schema
    return app.openapi_schema
