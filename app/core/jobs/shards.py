"""Sharded Self-Instruct: one decider, many requesters, the novelty guarantee kept exactly.

A job with `shards = N >= 1` is still one job, claimed by one worker: the **decider**. It
holds the job's only novelty index (exact ROUGE-L) and near-duplicate index, and it is an
ordinary generation engine to the jobs layer (`run_method`: batched commits, counters,
cancel, budget, resume all unchanged). It makes no model request itself. N **requesters**
(shards: Celery tasks, or threads of an in-process run) do all the model work: each runs
the Self-Instruct loop against the model servers (all of the job's endpoints, balanced by
its client) with a local copy of the pool, its own request seeds, and no target, and
pushes every candidate it decided, with its instances, to a Redis list. The decider pops
them in arrival order and decides again, against the whole job:

* an instruction the requester rejected stays rejected (a rejection never breaks the
  guarantee);
* one it took into its pool is checked against the decider's index; too similar to
  anything accepted by any shard (or a seed, or the dataset's content): rejected
  `too_similar`, with the decider's scores; else it joins the index, and its instances are
  checked against the job's near-duplicate index, as in a single-worker run;
* every instruction that joins the job's pool is published (a Redis list), and each
  requester adds the new ones to its local pool, so its prompts and its local filter see
  what the other shards found, and little of its work is rejected later.

A requester holds back while more than `MAX_BACKLOG` candidates wait for the decider, so
the requests sent beyond the target stay few.

So the accepted set is exactly what one worker would accept if the candidates arrived in
that order: no two accepted instructions above the ROUGE-L threshold, no near-duplicate
pair, whatever shard made them. The cost is one index check per candidate on the decider
(about a millisecond at a million entries), while the requests, parsing and filters, which
are most of Sprout's CPU per example, are spread over N processes.

Usage, budget, stop and failure: each requester adds its token and request counts to a
Redis hash; the decider shows their sum (less what an earlier attempt of the job counted)
as its client's usage, so the job's counters, the budget check and the progress are the
sum over shards, and a budget that is reached stops the decider, whose end sets the job's
stop flag, which every requester checks between candidates. Each requester keeps a beat
key with a short time to live; the decider starts again any shard whose beat is gone
(its worker died). A requester whose decider's beat is gone stops by itself. A decider
that dies is resumed like any job: its successor rebuilds the index from what is stored
and goes on popping; candidates the dead one popped and had not committed are lost work,
never a broken guarantee.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from collections.abc import AsyncGenerator, Callable
from dataclasses import asdict
from typing import Any

import redis

from app.core.config import CoreConfig
from app.core.llm.client import LLMOutageError
from app.core.methods.candidates import CandidateRecord, InstanceCandidate
from app.core.methods.self_instruct import SelfInstruct

BEAT_TTL_S = 10.0  # a shard (or the decider) silent this long is taken for dead
BEAT_EVERY_S = 0.5
MAX_BACKLOG = 256  # candidates waiting for the decider beyond which requesters hold back
KEEP_S = 3600  # a stopped job's keys (a resumed attempt takes its usage as the base)

# the shells set how a shard is started (a Celery task on a worker); None: a thread here
# (`sprout generate`, tests): (database URL, job id, shard, config, model endpoints) -> None
Spawner = Callable[[str, int, int, CoreConfig, "list[str] | None"], None]
spawner: Spawner | None = None


def _text(value: bytes | str) -> str:
    """A Redis reply as text: the client returns bytes (no `decode_responses`), which its
    types do not say."""
    return value.decode() if isinstance(value, bytes) else value


class ShardChannel:
    """The Redis keys one sharded job's decider and requesters share."""

    def __init__(self, redis_url: str, job_id: int):
        self.r = redis.Redis.from_url(redis_url)
        self.prefix = f"sprout:shards:job{job_id}"

    def key(self, name: str) -> str:
        return f"{self.prefix}:{name}"

    # candidates, requester -> decider
    def push(self, records: list[dict[str, Any]]) -> None:
        if records:
            self.r.rpush(self.key("candidates"), *(json.dumps(r) for r in records))

    def backlog(self) -> int:
        """Candidates waiting for the decider."""
        return int(self.r.llen(self.key("candidates")))

    def pop(self, wait_s: float, most: int = 256) -> list[dict[str, Any]]:
        first = self.r.blpop([self.key("candidates")], timeout=wait_s)
        if first is None:
            return []
        rest = self.r.lpop(self.key("candidates"), most - 1) or []
        return [json.loads(x) for x in [first[1], *rest]]

    # the job's pool, decider -> requesters
    def publish(self, texts: list[str]) -> None:
        if texts:
            self.r.rpush(self.key("pool"), *texts)

    def pool_since(self, offset: int) -> list[str]:
        return [_text(x) for x in self.r.lrange(self.key("pool"), offset, -1)]

    def restart(self, pool: list[str]) -> None:
        """A decider (first or resumed) starts: the pool is what it holds, the stop flag is off."""
        with self.r.pipeline() as p:
            p.delete(self.key("pool"), self.key("stop"))
            if pool:
                p.rpush(self.key("pool"), *pool)
            p.execute()

    # stop, beats, usage
    def stop(self) -> None:
        """Every requester stops; what is left of the job's keys goes within the hour."""
        with self.r.pipeline() as p:
            p.set(self.key("stop"), 1, ex=KEEP_S)
            for name in ("candidates", "pool", "usage"):
                p.expire(self.key(name), KEEP_S)
            p.execute()

    def stopped(self) -> bool:
        return bool(self.r.exists(self.key("stop")))

    def beat(self, who: str) -> None:
        self.r.set(self.key(f"beat:{who}"), 1, px=int(BEAT_TTL_S * 1000))

    def alive(self, who: str) -> bool:
        return bool(self.r.exists(self.key(f"beat:{who}")))

    def add_usage(self, delta: dict[str, int]) -> None:
        delta = {k: v for k, v in delta.items() if v}
        if delta:
            with self.r.pipeline() as p:
                for k, v in delta.items():
                    p.hincrby(self.key("usage"), k, v)
                p.execute()

    def usage(self) -> dict[str, int]:
        return {_text(k): int(v) for k, v in self.r.hgetall(self.key("usage")).items()}

    def clear(self) -> None:
        keys = list(self.r.scan_iter(f"{self.prefix}:*"))
        if keys:
            self.r.delete(*keys)


USAGE_FIELDS = ("requests", "errors", "retries", "prompt_tokens", "completion_tokens", "cached_prompt_tokens")


def to_wire(record: CandidateRecord, shard: int) -> dict[str, Any]:
    out = asdict(record)
    out.pop("parent"), out.pop("row_id")
    out["detail"] = {**record.detail, "shard": shard}
    return out


def from_wire(data: dict[str, Any]) -> CandidateRecord:
    data = dict(data)
    data["instances"] = [InstanceCandidate(**i) for i in data.get("instances") or []]
    return CandidateRecord(**data)


class ShardedSelfInstruct(SelfInstruct):
    """The decider (see the module docstring). Built like `SelfInstruct` (its index from
    the seeds, the dataset's content and what the job stored), plus where the shards meet."""

    def __init__(self, *args: Any, channel: ShardChannel, shards: int, start_shard: Callable[[int], None],
                 **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.channel = channel
        self.shards = shards
        self.start_shard = start_shard
        self._usage_base = channel.usage()  # what earlier attempts counted (already in the job's counters)

    async def run(self) -> AsyncGenerator[CandidateRecord, None]:
        channel = self.channel
        await asyncio.to_thread(channel.restart, list(self.machine))
        channel.beat("decider")
        started = {}
        for shard in range(self.shards):
            self.start_shard(shard)
            started[shard] = time.monotonic()
        last_beat = 0.0
        last_candidate = time.monotonic()
        try:
            while self.curated < self.p.target:
                records = await asyncio.to_thread(channel.pop, BEAT_EVERY_S)
                if records:
                    last_candidate = time.monotonic()
                elif time.monotonic() - last_candidate > max(self.client.config.outage_budget_s, 3 * BEAT_TTL_S):
                    # the shards are failing (model servers down) or no worker takes them:
                    # the job pauses, as a single-worker job does on an outage
                    raise LLMOutageError(
                        f"no shard of the job delivered a candidate for {time.monotonic() - last_candidate:.0f} s "
                        f"(model servers at {', '.join(self.client.endpoints)}; workers free for {self.shards} "
                        "shards on the generation queue?)")
                for data in records:
                    yield self._decide(from_wire(data))
                    if self.curated >= self.p.target:
                        break
                now = time.monotonic()
                if now - last_beat >= BEAT_EVERY_S:
                    last_beat = now
                    await asyncio.to_thread(self._tend, started)
        finally:
            with contextlib.suppress(redis.RedisError):
                channel.stop()
            self._sum_usage()

    def _tend(self, started: dict[int, float]) -> None:
        """Beat, sum the shards' usage into this client's, start again a shard that died."""
        self.channel.beat("decider")
        self._sum_usage()
        for shard, at in started.items():
            if time.monotonic() - at > BEAT_TTL_S and not self.channel.alive(f"shard{shard}"):
                self.start_shard(shard)
                started[shard] = time.monotonic()

    def _sum_usage(self) -> None:
        total = self.channel.usage()
        for name in USAGE_FIELDS:
            setattr(self.client.usage, name, total.get(name, 0) - self._usage_base.get(name, 0))

    def _decide(self, record: CandidateRecord) -> CandidateRecord:
        """The job-wide decision on a requester's candidate (see the module docstring)."""
        if not record.in_pool:
            return record  # rejected by its requester before any pool saw it
        novelty = self.index.check(record.instruction)
        self.decisions += 1
        record.detail["novelty_decision"] = self.decisions
        record.max_rouge_l, record.mean_rouge_l = novelty.max_rouge_l, novelty.mean_rouge_l
        record.most_similar = [{"instruction": t, "rouge_l": round(s, 6)} for t, s in novelty.most_similar]
        if not novelty.novel:
            record.accepted, record.in_pool, record.rule = False, False, "too_similar"
            return record
        self.index.add(record.instruction)
        self.machine.append(record.instruction)
        self.channel.publish([record.instruction])
        if record.accepted and self.near_duplicates is not None:
            rule = self._near_duplicates(record, record.instances)
            if rule:
                record.accepted, record.rule = False, rule
        if record.accepted:
            if self.curated >= self.p.target:
                record.accepted, record.rule = False, "over_target"
            else:
                self.curated += 1
        return record


# --- the requester ---------------------------------------------------------------------------
def run_requester(engine: SelfInstruct, channel: ShardChannel, shard: int) -> None:
    """Run one shard's Self-Instruct loop until the job's stop flag (or its decider's death)."""
    asyncio.run(_request(engine, channel, shard))


async def _request(engine: SelfInstruct, channel: ShardChannel, shard: int) -> None:
    who = f"shard{shard}"
    seen = 0
    sent = {name: 0 for name in USAGE_FIELDS}
    out: list[dict[str, Any]] = []

    def sync() -> bool:
        """Push what was decided and the usage, take in the job's pool; False: stop."""
        nonlocal seen
        channel.push(out)
        out.clear()
        now = {name: getattr(engine.client.usage, name) for name in USAGE_FIELDS}
        channel.add_usage({k: now[k] - sent[k] for k in USAGE_FIELDS})
        sent.update(now)
        for text in channel.pool_since(seen):
            seen += 1
            if text not in engine.machine:
                engine.index.add(text)
                engine.machine.append(text)
        channel.beat(who)
        return not channel.stopped() and channel.alive("decider")

    last = 0.0
    gen = engine.run()
    try:
        if not await asyncio.to_thread(sync):
            return
        async for record in gen:
            out.append(to_wire(record, shard))
            if time.monotonic() - last >= 0.1:
                last = time.monotonic()
                if not await asyncio.to_thread(sync):
                    return
                # the decider is behind: send nothing more until it catches up (work it
                # would decide after the target is met is wasted)
                while await asyncio.to_thread(channel.backlog) > MAX_BACKLOG:
                    await asyncio.sleep(0.05)
                    if not await asyncio.to_thread(sync):
                        return
    finally:
        await gen.aclose()
        await engine.client.aclose()
        with contextlib.suppress(redis.RedisError):
            sync()


def thread_spawner(start: Callable[[], None]) -> None:
    """A shard as a daemon thread of this process (in-process runs)."""
    threading.Thread(target=start, daemon=True, name="sprout-shard").start()
