"""The served API: `create_app` with the Celery dispatcher; `uvicorn --factory app.asgi:create_app`.

The API package knows the dispatcher only as the core's port (`app.core.jobs.dispatch`);
this is where the two shells meet, so `app/api/` imports nothing from `workers/`.
"""

from __future__ import annotations

from fastapi import FastAPI

from app.api.main import create_app as create_api
from app.settings import Settings
from workers.dispatch import celery_dispatcher


def create_app(settings: Settings | None = None) -> FastAPI:
    """The API on `settings`, sending new jobs to their Celery queues."""
    return create_api(settings, dispatcher=celery_dispatcher)
