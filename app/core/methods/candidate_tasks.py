"""The concurrent loop the request-per-candidate methods (persona, topic tree, Magpie) share.

Each candidate is one asyncio task (ask, filter, answer); the loop keeps as many in flight as
the client can serve without overshooting the target, yields each decided record, stores a
candidate accepted after the target was met as `over_target`, and gives up after a run of
failed requests. A method says only what its next task is (`_start`), so the loop and its
edge cases (cancellation at the target, consecutive failures, per-request seeds) live once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Callable, Coroutine, Iterable, Sequence
from typing import Any

from app.core.filters.novelty import NoveltyIndex
from app.core.llm.client import LLMClient, LLMError, LLMUnavailableError
from app.core.methods.candidates import CandidateRecord, NearDuplicates, StoredCandidate, TooManyFailures
from app.core.params import PoolFilterParams


class CandidateTasks:
    """Base of an engine whose candidates are independent tasks. Subclasses set `client`,
    `concurrency`, `target`, `seed`, `curated` and `requests`, and implement `_start`."""

    client: LLMClient
    concurrency: int
    target: int
    seed: int | None
    curated: int
    requests: int
    decided: int = 0  # records yielded with a fate (a failed request yields none)
    _consecutive_failures: int = 0

    def _seed_indexes(self, params: PoolFilterParams, seed: int | None, previous: Sequence[StoredCandidate],
                      pool: Iterable[str], near_duplicates: NearDuplicates | None,
                      known_examples: Iterable[tuple[str, str]],
                      example_text: Callable[[str, dict[str, Any]], str]) -> NoveltyIndex:
        """The novelty index over the pool and what an earlier attempt put in it; the
        near-duplicate index given the known examples and the earlier attempt's kept ones
        (`example_text(instruction, instance)` is the text compared); `curated` counted. A
        resumed job so decides exactly as if it had never stopped."""
        index = NoveltyIndex(threshold=params.rouge_l_threshold, top_k=params.similar_top_k,
                             mean_sample=params.mean_similarity_sample, seed=seed or 0)
        index.add_many(pool)
        index.add_many(c.instruction for c in previous if c.in_pool)
        if near_duplicates is not None:
            near_duplicates.check_and_add_many(known_examples)
            near_duplicates.check_and_add_many(
                (f"row{c.row_id}:{i}", example_text(c.instruction, x))
                for c in previous if c.accepted for i, x in enumerate(c.instances))
        self.curated = sum(1 for c in previous if c.accepted)
        return index

    def _start(self, state: dict[str, Any], in_flight: int) -> Coroutine[Any, Any, CandidateRecord] | None:
        """The next candidate's task (it puts its record in `state["record"]` once the record
        joins the pool), or None when there is nothing more to ask."""
        raise NotImplementedError  # each method (persona, topic tree, Magpie) says what it asks next

    async def run_tasks(self) -> AsyncGenerator[CandidateRecord, None]:
        running: dict[asyncio.Task[CandidateRecord], dict[str, Any]] = {}
        try:
            while self.curated < self.target:
                while len(running) < max(self.concurrency, self.client.capacity) \
                        and self.curated + len(running) < self.target:
                    state: dict[str, Any] = {"record": None}
                    work = self._start(state, len(running))
                    if work is None:
                        break
                    running[asyncio.create_task(work)] = state
                if not running:
                    return  # nothing more to ask
                done, _ = await asyncio.wait(running.keys(), return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    running.pop(task)
                    record = self._result(task)
                    if record is None:
                        continue
                    self.decided += 1
                    if record.accepted:
                        if self.curated >= self.target:
                            record.accepted, record.rule = False, "over_target"
                        else:
                            self.curated += 1
                    yield record
            # target met: a candidate already in the pool but not finished is stored as over target
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

    def _result(self, task: asyncio.Task[CandidateRecord]) -> CandidateRecord | None:
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
        """A request's seed: distinct per request, reproducible from the job's seed."""
        self.requests += 1
        return None if self.seed is None else (self.seed * 1_000_003 + self.requests) % (2**31)
