"""The Redis-backed near-duplicate index: worker processes share one index, and two
workers adding the same or nearly the same documents at once keep exactly one of each.

Real processes (spawned, as separate workers are) and the real Redis of `redis_url`.
"""

from __future__ import annotations

import multiprocessing as mp
import random

import pytest

from app.core.filters.dedup import NearDupIndex

pytestmark = pytest.mark.integration

NAMESPACE = "sprout-test:dedup"


def documents(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    vocab = [f"word{i}" for i in range(5000)]
    return [" ".join(rng.choice(vocab) for _ in range(60)) for _ in range(n)]


def near(text: str) -> str:
    words = text.split()
    words[-1] = "edited"  # one word of 60: Jaccard 55/61 > 0.9
    return " ".join(words)


def _worker(redis_url: str, prefix: str, texts: list[str], barrier, results) -> None:
    index = NearDupIndex(redis_url=redis_url, namespace=NAMESPACE)
    barrier.wait()
    results.put((prefix, [index.check_and_add(f"{prefix}{i}", text) for i, text in enumerate(texts)]))


def run_workers(redis_url: str, jobs: dict[str, list[str]]) -> dict[str, list[str | None]]:
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(len(jobs))
    results = ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(redis_url, prefix, texts, barrier, results)) for prefix, texts in jobs.items()]
    for p in procs:
        p.start()
    out = dict(results.get(timeout=120) for _ in procs)
    for p in procs:
        p.join(timeout=30)
        assert p.exitcode == 0
    return out


def test_workers_see_one_index(redis_url):
    originals = documents(40, seed=1)
    first = run_workers(redis_url, {"a:": originals})
    assert first["a:"] == [None] * 40
    second = run_workers(redis_url, {"b:": [near(t) for t in originals] + documents(20, seed=2)})
    assert second["b:"][:40] == [f"a:{i}" for i in range(40)]
    assert second["b:"][40:] == [None] * 20
    here = NearDupIndex(redis_url=redis_url, namespace=NAMESPACE)
    assert len(here) == 60
    assert here.check_and_add("c:0", originals[0]) == "a:0"


def test_concurrent_workers_keep_exactly_one_of_each_duplicate(redis_url):
    docs = documents(60, seed=3)
    # Worker a adds the documents; worker b, at the same time, exact copies of the first
    # half and near copies of the second half, in the same order so they collide.
    out = run_workers(redis_url, {"a:": docs, "b:": docs[:30] + [near(t) for t in docs[30:]]})
    for i in range(60):
        a, b = out["a:"][i], out["b:"][i]
        assert (a is None) != (b is None), (i, a, b)  # exactly one of the two was kept
        assert a in (None, f"b:{i}") and b in (None, f"a:{i}")
    assert len(NearDupIndex(redis_url=redis_url, namespace=NAMESPACE)) == 60


def test_clear_removes_the_namespace(redis_url):
    import redis

    index = NearDupIndex(redis_url=redis_url, namespace="sprout-test:temporary")
    other = NearDupIndex(redis_url=redis_url, namespace=NAMESPACE)
    index.check_and_add_many([(f"k{i}", t) for i, t in enumerate(documents(10, seed=4))])
    other.check_and_add("keep", "this one stays in its own namespace")
    index.clear()
    client = redis.Redis.from_url(redis_url)
    assert not list(client.scan_iter(match="sprout-test:temporary*"))
    assert len(other) == 1 and len(index) == 0
