"""How many requests one model server gets at once: additive increase, multiplicative decrease.

Why adaptive: a fixed number of requests in flight is wrong for most servers. Too low
leaves a vLLM server on a GPU idle; too high makes a small CPU server thrash or answer 429.
`AIMDLimit` starts at the configured value and

* raises the limit by one after a full window of successes (as many as the limit) while
  the limit was what held requests back, nothing failed, and the latency per completion
  token stayed within `latency_tolerance` of the best seen (the server keeps up);
* halves it (never below `floor`) on a 429, a 5xx or a timeout. One overload cuts once:
  a failure of a request sent before the last cut does not cut again, so a burst of 429s
  answered to the same wave of requests halves the limit once, as TCP does per window.

`Utilisation` integrates requests in flight over time, for the job's counters: the
time-weighted mean of in-flight / limit, and the share of wall time with at least one
request in flight. Plain bookkeeping, no locks: the client runs on one event loop.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field


@dataclass
class AIMDLimit:
    limit: int
    floor: int = 1
    ceiling: int = 64
    adaptive: bool = True
    latency_tolerance: float = 1.5
    epoch: int = 0  # bumped on every cut; a request remembers the epoch it was sent in
    _successes: int = 0
    _saturated: bool = False
    _best_latency: float | None = None
    _recent_latency: float | None = None

    def __post_init__(self) -> None:
        if self.floor < 1 or self.ceiling < self.floor:
            raise ValueError(f"concurrency floor {self.floor} and ceiling {self.ceiling}: need 1 <= floor <= ceiling")
        self.limit = min(self.ceiling, max(self.floor, self.limit))

    def saturated(self) -> None:
        """A request had to wait for a free slot: the limit is what holds the job back."""
        self._saturated = True

    def success(self, seconds: float, tokens: int) -> None:
        if not self.adaptive:
            return
        if tokens > 0:
            per_token = seconds / tokens
            recent = per_token if self._recent_latency is None else 0.7 * self._recent_latency + 0.3 * per_token
            self._recent_latency = recent
            self._best_latency = recent if self._best_latency is None else min(self._best_latency, recent)
        self._successes += 1
        if self._successes < self.limit:
            return
        holds = (self._recent_latency is None or self._best_latency is None
                 or self._recent_latency <= self.latency_tolerance * self._best_latency)
        if holds and self._saturated and self.limit < self.ceiling:
            self.limit += 1
        self._successes = 0
        self._saturated = False

    def overload(self, sent_epoch: int) -> bool:
        """A 429, 5xx or timeout for a request sent in `sent_epoch`; True when it cut the limit."""
        if not self.adaptive or sent_epoch != self.epoch:
            return False
        self.epoch += 1
        self.limit = max(self.floor, self.limit // 2)
        self._successes = 0
        self._saturated = False
        return True


@dataclass
class Utilisation:
    """Time integrals of requests in flight, from `start` (the job's start) to now."""

    start: float = field(default_factory=time.monotonic)
    _last: float = 0.0
    _in_flight: int = 0
    _limit: int = 1
    _load: float = 0.0  # integral of in_flight / limit
    _busy: float = 0.0  # time with at least one request in flight

    def __post_init__(self) -> None:
        self._last = self.start

    def _advance(self, now: float) -> None:
        dt = max(0.0, now - self._last)
        if self._in_flight:
            self._busy += dt
            self._load += dt * min(1.0, self._in_flight / max(1, self._limit))
        self._last = now

    def update(self, in_flight: int, limit: int, now: float | None = None) -> None:
        """Record the new state after a request started or ended, or the limit changed."""
        self._advance(time.monotonic() if now is None else now)
        self._in_flight, self._limit = in_flight, limit

    def figures(self, now: float | None = None) -> dict[str, float]:
        """The two figures up to `now`. Reads only (the job's heartbeat thread calls it
        while the event loop updates)."""
        now = time.monotonic() if now is None else now
        last, in_flight, limit, load, busy = self._last, self._in_flight, self._limit, self._load, self._busy
        dt = max(0.0, now - last)
        if in_flight:
            busy += dt
            load += dt * min(1.0, in_flight / max(1, limit))
        wall = now - self.start
        if wall <= 0:
            return {"llm_utilisation": 0.0, "llm_busy_share": 0.0}
        return {"llm_utilisation": round(min(1.0, load / wall), 4), "llm_busy_share": round(min(1.0, busy / wall), 4)}
