"""`retry_due`: one pass over what is due — deliveries and webhooks whose next attempt has
come, and attempts whose process died. `sprout beat` calls it every
`SPROUT_HANDOFF__RETRY_INTERVAL_S` seconds (`workers.tasks.retry_handoff`); `sprout handoff
retry` calls it once. Safe to run in several processes at once: each item is claimed by a
conditional UPDATE before it is tried.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlmodel import Session

from app.core.handoff import deliveries, webhooks
from app.core.handoff.config import HandoffConfig
from app.core.store import id_of


@dataclass
class RetrySummary:
    deliveries: dict[int, str] = field(default_factory=dict)  # id -> status after the attempt
    webhooks: dict[int, str] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.deliveries or self.webhooks)


def retry_due(session: Session, now: datetime, config: HandoffConfig | None = None, limit: int = 100) -> RetrySummary:
    """Attempt every due delivery, then send every due webhook (a delivery that lands now
    emits its `delivery_done` and sends it at once). Commits per item."""
    config = config or HandoffConfig()
    summary = RetrySummary()
    for delivery_id in deliveries.due_ids(session, now, config, limit):
        delivery = deliveries.attempt(session, delivery_id, config, now)
        if delivery is not None:
            summary.deliveries[id_of(delivery)] = delivery.status
    for sent in webhooks.send_due(session, now, config, limit):
        summary.webhooks[id_of(sent)] = sent.status
    return summary
