"""The engine of the planned methods (personas, topic trees): one prompt per planned item, then
the answer and Sprout's filters.

Each planned item (`prompt()`, `detail()`) asks the model, through `LLMClient.complete` like
every method, for one task; the task is answered with Evol-Instruct's response prompt. Every
candidate goes through the filters in the same order as the other methods: the heuristic
rules (Self-Instruct's), benchmark decontamination, ROUGE-L novelty against the pool (seeds,
the dataset's content in a build, and what this job accepted; a survivor joins the pool at
once), the answer's rules (truncated, stop words only, a short "sorry": Evol-Instruct's),
decontamination of the answer, and near-duplicates. Each candidate stores its item's
`detail` (where it came from), rejected or not. Up to `concurrency` items are in flight;
filtering runs on the event loop between awaits, so the pool is never raced. Resume: an
item whose detail an earlier attempt stored is not asked again.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterable, Sequence
from typing import Any

from app.core import evol_rules, prompts
from app.core.candidates import CandidateRecord, InstanceCandidate, NearDuplicates, StoredCandidate, TooManyFailures
from app.core.evol_instruct import RESPONSE_STOP
from app.core.filters.decontaminate import Checker, screen
from app.core.filters.dedup import example_text
from app.core.filters.heuristics import instruction_rule
from app.core.filters.novelty import NoveltyIndex
from app.core.llm.client import LLMClient, LLMError, LLMUnavailableError

TASK_STOP = ["\n#", "\n\n"]


class PlannedGeneration:
    """The engine shared by the planned methods (personas, topic trees): each planned item is one
    prompt for a task, answered and filtered (see the module docstring). `items` have `prompt()`
    and `detail()`; an item whose detail an earlier attempt stored is not asked again."""

    def __init__(
        self,
        params: Any,
        client: LLMClient,
        items: Sequence[Any],
        previous: Sequence[StoredCandidate] = (),
        concurrency: int = 8,
        near_duplicates: NearDuplicates | None = None,
        job_key: str = "job",
        pool: Iterable[str] = (),
        known_examples: Iterable[tuple[str, str]] = (),
        decontaminate: Checker | None = None,
        extra_detail: dict[str, Any] | None = None,
    ):
        self.p = params
        self.client = client
        self.concurrency = concurrency
        self.near_duplicates = near_duplicates
        self.decontaminate = decontaminate
        self.job_key = job_key
        self.extra_detail = dict(extra_detail or {})
        done = {_key(c.detail, items[0].detail()) for c in previous} if items else set()
        self.plan = [t for t in items if _key(t.detail(), t.detail()) not in done]
        self._setup(previous, pool, known_examples)

    def _setup(self, previous: Sequence[StoredCandidate], pool: Iterable[str],
               known_examples: Iterable[tuple[str, str]]) -> None:
        params, near_duplicates = self.p, self.near_duplicates
        self.index = NoveltyIndex(threshold=params.rouge_l_threshold, top_k=params.similar_top_k,
                                  mean_sample=params.mean_similarity_sample, seed=params.seed or 0)
        self.index.add_many(pool)
        self.index.add_many(c.instruction for c in previous if c.in_pool)
        if near_duplicates is not None:
            near_duplicates.check_and_add_many(known_examples)
            near_duplicates.check_and_add_many(
                (f"row{c.row_id}:{i}", example_text(c.instruction, x["input"], x["output"]))
                for c in previous if c.accepted for i, x in enumerate(c.instances))
        self.curated = sum(1 for c in previous if c.accepted)
        self.requests = len(previous) * 2
        self._consecutive_failures = 0


    async def run(self) -> AsyncIterator[CandidateRecord]:
        planned = iter(self.plan)
        running: dict[asyncio.Task, dict[str, Any]] = {}
        try:
            while self.curated < self.p.target:
                while len(running) < max(self.concurrency, self.client.capacity) \
                        and self.curated + len(running) < self.p.target:
                    item = next(planned, None)
                    if item is None:
                        break
                    state: dict[str, Any] = {"record": None}
                    running[asyncio.create_task(self._one(item, state))] = state
                if not running:
                    return  # every planned persona was asked
                done, _ = await asyncio.wait(running.keys(), return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    running.pop(task)
                    record = self._result(task)
                    if record is None:
                        continue
                    if record.accepted:
                        if self.curated >= self.p.target:
                            record.accepted, record.rule = False, "over_target"
                        else:
                            self.curated += 1
                    yield record
            # target met: a task already in the pool but not answered yet is stored as over target
            for task, state in list(running.items()):
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
                running.pop(task)
                record = state["record"]
                if record is not None:
                    record.accepted, record.rule = False, "over_target"
                    yield record
        finally:
            for task in running:
                task.cancel()
            await asyncio.gather(*running, return_exceptions=True)

    def _result(self, task: asyncio.Task) -> CandidateRecord | None:
        try:
            record = task.result()
        except LLMUnavailableError:
            raise
        except LLMError as exc:
            self._consecutive_failures += 1
            if self._consecutive_failures >= max(10, 2 * self.concurrency):
                raise TooManyFailures(f"{self._consecutive_failures} requests in a row failed; last: {exc}") from exc
            return None
        self._consecutive_failures = 0
        return record

    def _seed(self) -> int | None:
        self.requests += 1
        return None if self.p.seed is None else (self.p.seed * 1_000_003 + self.requests) % (2**31)

    async def _one(self, item: Any, state: dict[str, Any]) -> CandidateRecord:
        reply = await self.client.complete(item.prompt(), max_tokens=self.p.max_tokens,
                                           temperature=self.p.temperature, top_p=self.p.top_p, stop=TASK_STOP,
                                           seed=self._seed())
        detail: dict[str, Any] = {**item.detail(), **self.extra_detail}
        record = CandidateRecord(reply.text.strip(), accepted=False, detail=detail)
        if reply.finish_reason == "length":
            record.rule = "truncated_instruction"
            return record
        record.rule = instruction_rule(record.instruction, self.p.min_words, self.p.max_words, self.p.blacklist)
        if record.rule:
            return record
        if self.decontaminate is not None and screen(self.decontaminate, record):
            record.rule = "contaminated"
            return record
        novelty = self.index.check(record.instruction)
        record.max_rouge_l, record.mean_rouge_l = novelty.max_rouge_l, novelty.mean_rouge_l
        record.most_similar = [{"instruction": t, "rouge_l": round(s, 6)} for t, s in novelty.most_similar]
        if not novelty.novel:
            record.rule = "too_similar"
            return record
        record.in_pool = True  # joins the pool at once: the next candidate is compared with it too
        self.index.add(record.instruction)
        state["record"] = record
        try:
            await self._answer(record)
        except LLMUnavailableError:
            raise
        except LLMError as exc:
            record.rule = "llm_error"
            record.detail["error"] = str(exc)[:500]
        return record

    async def _answer(self, record: CandidateRecord) -> None:
        prompt = prompts.render("evol_response", instruction=record.instruction).rstrip()
        reply = await self.client.complete(prompt, max_tokens=self.p.response_max_tokens,
                                           temperature=self.p.response_temperature, top_p=self.p.response_top_p,
                                           stop=RESPONSE_STOP, seed=self._seed())
        response = reply.text.strip()
        record.instances = [InstanceCandidate("", response)]
        if reply.finish_reason == "length":
            record.rule = "truncated_response"
        elif evol_rules.stopwords_only(response):
            record.rule = "stopwords_only_response"
        elif evol_rules.sorry_response(response, self.p.sorry_max_words):
            record.rule = "sorry_response"
        elif self.decontaminate is not None and (rule := screen(self.decontaminate, record)):
            record.rule = rule
        elif self.near_duplicates is not None and self.near_duplicates.check_and_add(
                f"{self.job_key}:{uuid.uuid4().hex}", example_text(record.instruction, "", response)):
            record.instances[0].rule = "near_duplicate"
            record.rule = "near_duplicate"
        else:
            record.accepted, record.rule = True, None


def _key(detail: dict[str, Any], like: dict[str, Any]) -> tuple[Any, ...]:
    """An item's identity: the values of the keys a planned item's detail has (lists as tuples)."""
    return tuple(tuple(v) if isinstance(v := detail.get(k), list) else v for k in sorted(like))
