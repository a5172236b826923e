"""Sharded Self-Instruct: requesters in worker processes, one decider, the guarantee kept.

The model server is the benchmarks' FAKE OpenAI-compatible server in its `copies` mode
(named as such: it is not a model): its instructions are near-copies of a few fixed ones and
its outputs are drawn from a few fixed texts, so shards working in parallel keep making
candidates that each shard alone would accept and that only a job-wide check rejects. The
accepted set is then checked pair by pair against brute force: rouge-score's ROUGE-L, and
the exact Jaccard of word 3-gram shingles.
"""

from __future__ import annotations

import importlib.util
import multiprocessing as mp
import os
import re
import signal
import time
from itertools import combinations
from pathlib import Path

import pytest
import redis
from rouge_score import rouge_scorer
from sqlmodel import select

from app.core import jobs, store
from app.core.filters.dedup import example_text
from app.core.jobs import lifecycle, shards
from app.core.seeds import load_seed_file
from app.db import session_scope
from app.models import Instruction, JobStatus
from app.settings import Settings

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
SEEDS = ROOT / "seeds" / "default.jsonl"


def fake_server_module():
    spec = importlib.util.spec_from_file_location("fake_llm_server", ROOT / "benchmarks" / "fake_llm_server.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _shard_process(url, job_id, shard, config, base_urls):
    from app.core.jobs.self_instruct import run_shard

    run_shard(url, job_id, shard, config, base_urls)


def shingles(text: str) -> set[tuple[str, ...]]:
    words = re.findall(r"\w+", text.casefold())
    return {tuple(words[i:i + 3]) for i in range(max(1, len(words) - 2))}


def test_shards_in_worker_processes_keep_the_job_wide_guarantee(pg_url, redis_url, monkeypatch):
    fake = fake_server_module()
    settings = Settings(database_url=pg_url, redis_url=redis_url, job_batch_size=4, job_flush_s=0.5,
                        llm_concurrency=4)
    params = jobs.get("self_instruct").validate_params(
        {"target": 16, "shards": 3, "seed": 5, "near_duplicate_threshold": 0.8}, settings.core_config().defaults)
    fmt, tasks = load_seed_file(SEEDS)
    with session_scope(pg_url) as s:
        seed_set = store.import_seed_set(s, SEEDS.name, fmt, tasks)
        job_id = store.create_job(s, "self_instruct", params.model_dump(), seed_set_id=seed_set.id).id

    ctx = mp.get_context("spawn")
    started: list[tuple[int, mp.Process]] = []

    def spawn(url, job, shard, config, base_urls):
        proc = ctx.Process(target=_shard_process, args=(url, job, shard, config, base_urls), daemon=True)
        proc.start()
        started.append((shard, proc))

    monkeypatch.setattr(shards, "spawner", spawn)
    channel = shards.ShardChannel(redis_url, job_id)
    killed: list[int] = []
    killed_at: list[float] = []

    def kill_shard_zero():  # a worker dies once its shard is at work: the decider starts it again
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not channel.alive("shard0"):
            time.sleep(0.1)
        for shard, proc in list(started):
            if shard == 0 and proc.pid:
                os.kill(proc.pid, signal.SIGKILL)
                killed.append(proc.pid)
                killed_at.append(time.monotonic())
                return

    import threading

    killer = threading.Thread(target=kill_shard_zero, daemon=True)
    with fake.FakeServer(copies=True, latency_s=1.0) as url:  # answers that take a while: the shards interleave, and
        # the job outlasts the silence (`shards.BEAT_TTL_S`) after which the killed shard is started again
        killer.start()
        job = lifecycle.run_job(pg_url, job_id, settings.core_config(), base_urls=[url])
        ended = time.monotonic()
        killer.join(5)
        for _, proc in started:
            proc.join(30)
    assert job.status == JobStatus.succeeded.value, job.error
    assert all(not proc.is_alive() for _, proc in started), "every shard stops when the job ends"
    assert killed, "a shard was killed while at work"
    if ended - killed_at[0] > shards.BEAT_TTL_S + 5:  # the job outlived the silence after which it restarts a shard
        assert [s for s, _ in started].count(0) >= 2, "the killed shard was started again"

    with session_scope(pg_url) as s:
        stored = store.stored_candidates(s, job_id)
        too_similar = s.exec(select(Instruction).where(Instruction.job_id == job_id,
                                                       Instruction.rule == "too_similar")).all()
    accepted = [c for c in stored if c.accepted]
    assert len(accepted) == 16
    assert {c.detail.get("shard") for c in stored} <= {0, 1, 2}  # every candidate came through a shard
    # the shards' parallel work was rejected job-wide, not only by each shard's own pool
    assert any((row.max_rouge_l or 0) > 0.7 for row in too_similar)
    assert job.counters["llm_requests"] > 0 and job.counters["completion_tokens"] > 0  # summed over shards

    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
    for a, b in combinations(accepted, 2):
        assert scorer.score(a.instruction, b.instruction)["rougeL"].fmeasure <= 0.7, (a.instruction, b.instruction)
    examples = [example_text(c.instruction, x["input"], x["output"]) for c in accepted for x in c.instances]
    for a, b in combinations(examples, 2):
        sa, sb = shingles(a), shingles(b)
        assert len(sa & sb) / len(sa | sb) < 0.8, (a[:60], b[:60])
    assert not redis.Redis.from_url(redis_url).exists(channel.key("candidates")) or channel.stopped()


def test_the_decider_rejects_what_another_shard_already_made(redis_url):
    """Two shards each accept the same task against their own pools; the decider keeps
    the first and rejects the second, with its score against the first; a near-duplicate
    example of a novel instruction loses its instances; a shard's own rejection stands."""
    from app.core.config import LLMConfig
    from app.core.filters.dedup import NearDupIndex
    from app.core.llm.client import LLMClient
    from app.core.methods.candidates import CandidateRecord, InstanceCandidate
    from app.core.params import SelfInstructParams
    from app.core.seeds import SeedTaskData

    params = SelfInstructParams(target=10)
    seeds = [SeedTaskData(instruction=f"Seed task number {i} about topic {i}.")
             for i in range(8)]
    channel = shards.ShardChannel(redis_url, 991)
    decider = shards.ShardedSelfInstruct(params, LLMClient(LLMConfig(base_urls=["http://127.0.0.1:9/v1"], dialect="completions")), seeds,
                                         near_duplicates=NearDupIndex(threshold=0.8), channel=channel,
                                         shards=2, start_shard=lambda shard: None)
    doc = " ".join(f"word{i}" for i in range(120))

    def made(text, shard, output=doc, accepted=True, rule=None):
        record = CandidateRecord(text, accepted=accepted, rule=rule, in_pool=rule is None,
                                 instances=[InstanceCandidate("none", output)], detail={"shard": shard})
        return shards.from_wire(shards.to_wire(record, shard))

    first = decider._decide(made("Describe the migration of arctic terns across the ocean.", 0))
    again = decider._decide(made("Describe the migration of arctic terns across the sea.", 1))
    other = decider._decide(made("Plan a three day hiking trip in the mountains.", 1))
    own = decider._decide(made("Short.", 1, accepted=False, rule="too_short"))
    assert first.accepted and first.in_pool
    assert not again.accepted and again.rule == "too_similar" and not again.in_pool
    assert again.max_rouge_l > 0.7 and again.most_similar[0]["instruction"] == first.instruction
    assert not other.accepted and other.rule == "near_duplicate" and other.in_pool  # same output as `first`
    assert own.rule == "too_short"
    assert decider.curated == 1
    assert channel.pool_since(0) == [first.instruction, other.instruction]  # what the shards take in


def test_a_token_budget_stops_every_shard(pg_url, redis_url):
    """The shards' tokens are the job's: the budget, checked on their sum, ends the job, and
    the stop flag ends every requester (threads of this process here)."""
    import threading

    from app.core.budget import TOKEN_BUDGET_REACHED

    fake = fake_server_module()
    settings = Settings(database_url=pg_url, redis_url=redis_url, job_batch_size=4, job_flush_s=0.5)
    params = jobs.get("self_instruct").validate_params(
        {"target": 100000, "shards": 2, "seed": 3, "max_total_tokens": 20000}, settings.core_config().defaults)
    fmt, tasks = load_seed_file(SEEDS)
    with session_scope(pg_url) as s:
        seed_set = store.import_seed_set(s, SEEDS.name, fmt, tasks)
        job_id = store.create_job(s, "self_instruct", params.model_dump(), seed_set_id=seed_set.id).id
    with fake.FakeServer() as url:
        job = lifecycle.run_job(pg_url, job_id, settings.core_config(), base_urls=[url])
        for thread in [t for t in threading.enumerate() if t.name == "sprout-shard"]:
            thread.join(30)
            assert not thread.is_alive(), "a requester outlived its job"
    assert job.status == JobStatus.succeeded.value, job.error
    assert job.result["stopped"] == TOKEN_BUDGET_REACHED
    assert job.counters["prompt_tokens"] + job.counters["completion_tokens"] >= 20000
    assert 0 < job.counters["accepted"] < 100000
    assert shards.ShardChannel(redis_url, job_id).stopped()
