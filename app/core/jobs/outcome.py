"""What a kind's `run` may return instead of a bare result: the result and the follow-up jobs.

A kind that wants jobs to run after it (a build's `version_handoff` job, a hand-off's gated
training run) does not make them itself: it returns an `Outcome` whose `followups` say how
to make each, and the lifecycle (`lifecycle.run_job`) makes them in the transaction that
marks the job succeeded, so a job that lost its claim, or was cancelled, queues nothing,
and a job that succeeded always has its follow-ups stored. Their ids land in
`result["followups"]` (`JobResult.followups`); a dispatcher (`dispatch.py`) then sends them
to run. `result` is the kind's result model (a plain dict is read through that model too);
a follow-up's `create` sees it as the JSON to be stored, and may add to it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel
from sqlmodel import Session


@dataclass
class FollowUp:
    """One job to make when the job succeeds.

    `create(session, result)` makes it (or finds it, made before) in the finishing
    transaction and returns its id when it waits in the queue, else None; it may add to
    `result` what the job records about it. A failure is recorded under `result[recorded_as]`
    (`"TypeName: message"`) and the job still succeeds; with `recorded_as` None, a
    `JobInputError` fails the job with its message instead.
    """

    create: Callable[[Session, dict[str, Any]], int | None]
    recorded_as: str | None = None


@dataclass
class Outcome:
    result: BaseModel | dict[str, Any]
    followups: list[FollowUp] = field(default_factory=list)
