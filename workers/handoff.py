"""The hand-off's part of the Celery shell: the beat's retry of due deliveries and webhooks
(`app.core.handoff.retry`). (A job's `job_finished` webhooks and its follow-up jobs are the
jobs layer's: `app.core.jobs.lifecycle` and `app.core.jobs.dispatch`.)"""

from __future__ import annotations

import logging
from typing import Any

from app.core.handoff import retry as handoff_retry
from app.db import session_scope
from app.models import utcnow

log = logging.getLogger(__name__)


def retry(settings: Any) -> dict[str, dict[int, str]]:
    with session_scope(settings.resolved_database_url) as session:
        summary = handoff_retry.retry_due(session, utcnow(), settings.handoff_config())
    if summary:
        log.info("hand-off retries: deliveries %s, webhooks %s", summary.deliveries, summary.webhooks)
    return {"deliveries": summary.deliveries, "webhooks": summary.webhooks}
