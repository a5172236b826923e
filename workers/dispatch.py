"""The Celery dispatcher: `app.core.jobs.dispatch.Dispatcher` over the broker.

A submitted job goes to its kind's queue (`celery_app.enqueue`); a broker that cannot take
it raises `DispatchUnavailable`, which the caller turns into its answer (the API: a 503, or
the job marked failed; a worker: a log line, the reaper sends the job later). The workers
use it for follow-up jobs and due builds; the API is created with `celery_dispatcher` as its
dispatcher factory (`app/asgi.py`), so it never imports this package itself.
"""

from __future__ import annotations

from typing import Any

from celery import Celery

from app.core.jobs.dispatch import DispatchUnavailable
from workers.celery_app import enqueue, make_celery


class CeleryDispatcher:
    def __init__(self, celery: Celery):
        self.celery = celery

    def submit(self, job_id: int, kind: str) -> None:
        try:
            enqueue(self.celery, job_id, kind)
        except Exception as exc:  # kombu / redis connection errors
            raise DispatchUnavailable(str(exc)) from exc


def celery_dispatcher(settings: Any) -> CeleryDispatcher:
    """A dispatcher on a Celery app configured from `settings` (the API's factory)."""
    return CeleryDispatcher(make_celery(settings))
