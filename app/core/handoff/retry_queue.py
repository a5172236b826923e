"""The retry queue deliveries and webhook deliveries share: claim, find what is due, settle.

Both are rows with `status`, `attempts`, `next_attempt_at` and `claimed_at`. An attempt is
claimed by one conditional UPDATE (pending and due, or running with a claim older than
`claim_timeout_s`: its process died), so two processes never try the same row at once;
`settle` then records what the attempt decided: done, failed for good (not retryable, or
the last of `max_attempts`), or pending again after `HandoffConfig.backoff`. What an attempt
does and what else it records (the attempt rows, the location, the status code) stays with
its owner (`deliveries`, `webhooks`); `retry.retry_due` walks both queues.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, and_, or_, update
from sqlmodel import Session, select

from app.core.handoff.config import HandoffConfig

PENDING, RUNNING, DONE, FAILED = "pending", "running", "done", "failed"


def claim(session: Session, table: Any, item_id: int, now: datetime, config: HandoffConfig,
          force: bool = False) -> bool:
    """Take row `item_id` of `table` for one attempt (`force`: pending, due or not); counts the
    attempt. False when it is not due or another live process holds it. Commits."""
    stale = now - timedelta(seconds=config.claim_timeout_s)
    due = or_(table.next_attempt_at.is_(None), table.next_attempt_at <= now)
    waiting = table.status == PENDING if force else and_(table.status == PENDING, due)
    result = cast("CursorResult[Any]", session.execute(  # an UPDATE's result: it has a rowcount
        update(table).where(table.id == item_id)
        .where(or_(waiting, and_(table.status == RUNNING, table.claimed_at < stale)))
        .values(status=RUNNING, claimed_at=now, attempts=table.attempts + 1)
    ))
    session.commit()
    return result.rowcount == 1


def due_ids(session: Session, table: Any, now: datetime, config: HandoffConfig, limit: int = 100) -> list[int]:
    """Ids of the rows of `table` to try now, the longest-waiting first: pending and due, or
    running with a stale claim."""
    stale = now - timedelta(seconds=config.claim_timeout_s)
    return list(session.exec(
        select(table.id)
        .where(or_(and_(table.status == PENDING, table.next_attempt_at <= now),
                   and_(table.status == RUNNING, table.claimed_at < stale)))
        .order_by(table.next_attempt_at, table.id).limit(limit)
    ).all())


def settle(item: Any, error: str | None, now: datetime, config: HandoffConfig, retryable: bool = True) -> None:
    """Set a claimed row's status after its attempt (the caller adds and commits it): done when
    `error` is None; failed when it is not `retryable` or was the last allowed attempt; else
    pending until the backoff has passed."""
    item.claimed_at = None
    if error is None:
        item.status, item.next_attempt_at = DONE, None
    elif not retryable or item.attempts >= config.max_attempts:
        item.status, item.next_attempt_at = FAILED, None
    else:
        item.status, item.next_attempt_at = PENDING, config.next_attempt_at(now, item.attempts)
