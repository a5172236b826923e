"""Magpie on the real embedded chat model (SmolLM2 135M Instruct, its ChatML template from
llama.cpp's /props), stored in PostgreSQL: a dataset recipe `magpie` then `evol_instruct` built
by a real worker process lands in a version, every magpie candidate stored with its fate; a
three-turn conversation exports to sharegpt and messages, loads with `datasets` and trains one
SFT step with every answer in the loss and no user token; and a chat-only endpoint (a fault
injector in front of the real model) fails the job at once with one message naming it."""

from __future__ import annotations

import json
import math

import pytest
from sqlmodel import select

from app.core import conversation, export, jobs, store
from app.core.datasets import recipe as recipes
from app.core.datasets import versions
from app.core.handoff import sources
from app.core.jobs import dataset_build, lifecycle
from app.core.seeds import load_seed_file
from app.core.training.data import read_export
from app.core.training.masks import IGNORE, tokenize_for_training
from app.db import session_scope
from app.models import Instruction, Job, JobStatus
from app.settings import Settings
from tests.conftest import DEFAULT_SEEDS
from tests.fault_server import ChatOnlyProxy
from tests.service_fixtures import api_settings, processes, service_env, wait_for  # noqa: F401
from tests.training_fixtures import tiny_model_dir  # noqa: F401  (fixture)

pytestmark = pytest.mark.integration

SMOLLM_SYSTEM = "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
# room for the 135M model's answers; a candidate budget so a bad run ends rather than spins
PARAMS = {"max_tokens": 96, "response_max_tokens": 320, "seed": 11, "near_duplicate_threshold": 0.8,
          "max_candidates": 24}


def make_dataset(url: str, name: str) -> int:
    fmt, tasks = load_seed_file(DEFAULT_SEEDS)
    steps = [{"kind": "magpie", "params": PARAMS},
             {"kind": "evol_instruct", "source": "previous",
              "params": {"rounds": 1, "max_tokens": 120, "response_max_tokens": 240, "chat_max_tokens": 240,
                         "seed": 3}}]
    with session_scope(url) as session:
        seed_set = store.import_seed_set(session, "default.jsonl", fmt, tasks)
        recipe = recipes.parse_recipe({"seed_set_ids": [seed_set.id], "steps": steps, "grow_by": 2},
                                      dataset_build.step_validator())
        return versions.create_dataset(session, None, name, recipe).id


def test_a_magpie_then_evol_recipe_builds_a_version_with_a_real_worker(api_settings, processes, chat_llm_base_url,
                                                                      pg_url):
    dataset_id = make_dataset(pg_url, "magpie-sft")
    env = service_env(api_settings, SPROUT_LLM_BASE_URLS=chat_llm_base_url, SPROUT_JOB_FLUSH_S="0.5")
    worker = processes(["worker", "--queues", "generation", "--concurrency", "1"], env, "worker")
    from workers.celery_app import enqueue, make_celery

    with session_scope(pg_url) as session:
        build_id = jobs.requests.create_job(session, jobs.JobRequest("dataset_build", {"dataset_id": dataset_id})).id
    enqueue(make_celery(api_settings), build_id, "dataset_build")

    def finished():
        with session_scope(pg_url) as session:
            job = session.get(Job, build_id)
            return job if job.status in ("succeeded", "failed", "cancelled") else None

    build = wait_for(finished, "the build to finish on the worker", [worker], poll_s=1)
    assert build.status == "succeeded", build.error
    with session_scope(pg_url) as session:
        magpie_job = session.get(Job, build.result["steps"][0])
        evol_job = session.get(Job, build.result["steps"][1])
        candidates = session.exec(select(Instruction).where(Instruction.job_id == magpie_job.id)).all()
        queries = {c.instruction for c in candidates if c.fate == "accepted"}
        rows = list(sources.version_rows(session, dataset_id, 1))
    assert magpie_job.kind == "magpie" and magpie_job.status == "succeeded" and evol_job.kind == "evol_instruct"
    # the magpie step landed rows: its queries, each stored with its fate, a rejection with its rule
    assert queries and all(c.rule for c in candidates if c.fate == "rejected")
    assert magpie_job.result["pre_query_template"]["text"] == SMOLLM_SYSTEM + "<|im_start|>user\n"
    assert all("<|im_start|>" not in c.instruction and "<|im_end|>" not in c.instruction for c in candidates)
    roles = magpie_job.counters["roles"]
    assert roles["generator"]["completion_tokens"] > 0 and roles["responder"]["completion_tokens"] > 0
    # the query goes raw through the completions endpoint, the answer through the chat API
    assert roles["generator"]["dialect"] == "completions" and roles["responder"]["dialect"] == "chat"
    # the version holds rows grown from the magpie queries
    assert rows and all(r["lineage"] and r["lineage"][0]["instruction"] in queries for r in rows if r["lineage"])
    assert {r["method"] for r in rows} <= {"magpie", "evol_instruct"}


def _answer_spans(text: str, messages: list[dict[str, str]], end: str) -> list[tuple[int, int]]:
    """Where each answer and its end-of-turn marker lie in the rendered text, found by searching it."""
    spans, at = [], 0
    for message in messages:
        start = text.index(message["content"], at)
        at = start + len(message["content"])
        if message["role"] == "assistant":
            assert text.startswith(end, at)
            spans.append((start, at + len(end)))
    return spans


def test_a_three_turn_magpie_conversation_exports_loads_and_trains_one_step(pg_url, chat_llm_base_url,
                                                                           tiny_model_dir, tmp_path):
    import torch
    from datasets import load_dataset

    from app.core.training.base_model import load_model_and_tokenizer
    from app.core.training.config import TrainParams
    from app.core.training.trainer import build_trainer, mask_mode

    settings = Settings(database_url=pg_url, job_flush_s=0.5, job_batch_size=4, llm_concurrency=4)
    with session_scope(pg_url) as session:
        job_id = jobs.requests.create_job(session, jobs.JobRequest(
            "magpie", {**PARAMS, "target": 1, "n_turns": 3, "max_candidates": 30})).id
    job = lifecycle.run_job(pg_url, job_id, settings.core_config(), base_urls=[chat_llm_base_url])
    assert job.status == "succeeded", job.error
    with session_scope(pg_url) as session:
        curated = store.curated_examples(session, job_id)
    assert len(curated) == 1 and len(curated[0]["turns"]) == 4, curated
    expected = conversation.messages(curated[0])
    assert [m["role"] for m in expected] == ["user", "assistant"] * 3

    for fmt in ("sharegpt", "messages"):
        path = tmp_path / f"magpie-{fmt}.jsonl"
        assert export.write(curated, fmt, path) == 1
        loaded = load_dataset("json", data_files=str(path), split="train")
        if fmt == "sharegpt":
            turns = loaded[0]["conversations"]
            assert [t["from"] for t in turns] == ["human", "gpt"] * 3
            assert [t["value"] for t in turns] == [m["content"] for m in expected]
        else:
            assert loaded[0]["messages"] == expected
        assert read_export(path)[1][0] == expected

    model, tokenizer = load_model_and_tokenizer(tiny_model_dir, torch.float32, "sdpa")
    params = TrainParams(base_model=str(tiny_model_dir), method="full", max_steps=1, batch_size=1, packing=False,
                         warmup_ratio=0.0, max_length=4096)  # the whole conversation, not truncated
    mode = mask_mode(tokenizer, params)
    assert mode == "assistant"
    ids, labels = tokenize_for_training(tokenizer, expected, mode)
    text = tokenizer.apply_chat_template(expected, tokenize=False)
    encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    assert encoded["input_ids"] == ids
    answers = _answer_spans(text, expected, "<end_of_turn>")
    # token by token: a token carries loss exactly when it lies in an answer (none of a user turn)
    for token, (start, end), label in zip(ids, encoded["offset_mapping"], labels, strict=True):
        assert (label != IGNORE) == any(a <= start and end <= b for a, b in answers), tokenizer.decode([token])
    for a, b in answers:  # all three answers are in the loss
        assert any(label != IGNORE for (s, e), label in zip(encoded["offset_mapping"], labels) if a <= s and e <= b)
    trainer = build_trainer(params, model, tokenizer, read_export(tmp_path / "magpie-messages.jsonl")[1], [],
                            tmp_path / "ckpt")
    assert trainer.train_dataset[0]["input_ids"] == ids and trainer.train_dataset[0]["labels"] == labels
    result = trainer.train()
    assert result.global_step == 1 and math.isfinite(result.training_loss)


def test_a_chat_only_endpoint_fails_the_job_at_once_naming_it(pg_url, chat_llm_base_url):
    settings = Settings(database_url=pg_url, job_flush_s=0.5, job_batch_size=4, llm_concurrency=4)
    with ChatOnlyProxy(chat_llm_base_url) as proxy:
        with session_scope(pg_url) as session:
            job_id = jobs.requests.create_job(session, jobs.JobRequest("magpie", {**PARAMS, "target": 2})).id
        job = lifecycle.run_job(pg_url, job_id, settings.core_config(), base_urls=[proxy.url])
    assert job.status == JobStatus.failed.value
    assert job.error.startswith("magpie needs raw completions access: ") and proxy.url in job.error, job.error
    # at once: the first queries sent together, no retry, and no answer asked through the chat API
    assert sum(p.endswith("/v1/completions") for p in proxy.paths) <= settings.llm.concurrency
    assert not any(p.endswith("/chat/completions") for p in proxy.paths)
    with session_scope(pg_url) as session:
        assert not session.exec(select(Instruction).where(Instruction.job_id == job_id)).all()
    assert json.dumps(job.counters)  # the counters were kept
