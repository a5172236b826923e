"""Prometheus metrics of the generation path, for operators.

Why in the core: the numbers are made where the work is done (the LLM client, the
generation driver), in whichever process runs it: a Celery worker, `sprout generate`, a
test. `prometheus_client` is a plain library; the shells only expose what it collected
(`app/api/routes/metrics.py`).

Celery's prefork pool runs jobs in child processes, so the registry works in
multiprocess mode when `PROMETHEUS_MULTIPROC_DIR` is set before this module is imported:
every process writes its samples to files in that folder, and the API, pointed at the
same folder, aggregates them on each scrape. Without it each process counts for itself.
"""

from __future__ import annotations

import os

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client import multiprocess as _multiprocess

LLM_REQUESTS = Counter(
    "sprout_llm_requests", "LLM requests sent, by endpoint and outcome (ok, overload, retryable, error, cancelled).",
    ["endpoint", "outcome"],
)
LLM_LATENCY = Histogram(
    "sprout_llm_request_seconds", "Time from sending an LLM request to its last token, answered ones.",
    ["endpoint"], buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300),
)
LLM_TOKENS = Counter(
    "sprout_llm_tokens", "Tokens by endpoint and kind (prompt, completion, cached_prompt).", ["endpoint", "kind"],
)
LLM_ROLE_TOKENS = Counter(
    "sprout_llm_role_tokens", "Tokens of answered steps by role (generator, responder, judge) and dialect.",
    ["role", "dialect", "kind"],
)
LLM_ROLE_COST = Counter(
    "sprout_llm_role_cost", "Cost of answered steps by role, at each role's price per million tokens "
    "(in the price's currency; unpriced roles add nothing).", ["role"],
)
LLM_ROLE_STEPS = Counter(
    "sprout_llm_role_steps", "Steps asked of the model servers by role and outcome.", ["role", "outcome"],
)
LLM_IN_FLIGHT = Gauge(
    "sprout_llm_in_flight", "LLM requests in flight, by endpoint.", ["endpoint"], multiprocess_mode="livesum",
)
LLM_LIMIT = Gauge(
    "sprout_llm_concurrency_limit", "The adaptive concurrency limit, by endpoint (summed over running jobs).",
    ["endpoint"], multiprocess_mode="livesum",
)
CANDIDATES = Counter(
    "sprout_candidates", "Decided candidates by job kind, fate and rejection rule (empty when accepted).",
    ["kind", "fate", "rule"],
)


def _multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


def registry() -> CollectorRegistry:
    """What a scrape shows: every process's samples in multiprocess mode, else this one's."""
    path = _multiprocess_dir()
    if path:
        reg = CollectorRegistry()
        _multiprocess.MultiProcessCollector(reg, path=path)
        return reg
    from prometheus_client import REGISTRY

    return REGISTRY


def exposition() -> bytes:
    return generate_latest(registry())


def process_exited(pid: int) -> None:
    """Drop a dead process's live gauges (in flight, limits) in multiprocess mode."""
    path = _multiprocess_dir()
    if path:
        _multiprocess.mark_process_dead(pid, path)
