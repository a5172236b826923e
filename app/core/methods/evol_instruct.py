"""Evol-Instruct (Xu et al., 2023, WizardLM): rewrite a pool of instructions, round after round.

A job starts from a pool (a seed set, or another job's accepted instructions). The pool's
instructions are stored first as the roots of their lineages (round 0). Then, for each
round 1..N, every lineage's current instruction (its *tip*: the root, or the last
evolution that survived) is evolved once:

1. an operation is drawn by weight (add constraints, deepening, concretizing, increased
   reasoning steps, complicate input, in-breadth) from an RNG seeded by (job seed, round,
   lineage), so a resumed job draws what the first attempt drew;
2. the rewrite is requested with that operation's few-shot prompt, and checked: cut by
   the token limit, empty, prompt scaffolding copied (elimination rule 4), an unchanged
   copy of the parent (rule 1, without a request), ROUGE-L above the threshold against
   the pool less the lineage's own ancestors;
3. the judge is asked whether parent and rewrite are equal (rule 1);
4. a response is generated (stored as the instruction's one instance, input "") and
   checked: cut by the token limit, "sorry" in fewer than 80 words (rule 2), only
   punctuation and stop words (rule 3);
5. on the event loop, in the order results arrive: the novelty check again against the
   pool as it is now (two lineages of one round may converge), then the near-duplicate
   check of instruction + response. A survivor joins the pool and becomes its lineage's
   tip; a failure is stored with its rule and the tip stays, so the next round evolves
   the parent again (the paper's "put back into the pool").

Every evolution is stored (accepted or not) with its parent, operation and round. Rounds
are barriers: round r+1 starts when every lineage has had its round-r evolution, as in
the paper, where each round's output is the next round's input.

Dialects: through `completions` each step is a few-shot continuation; through `chat` the
rewrite is WizardLM's own user prompt for the operation after "You are a helpful
assistant." (temperature 1, top_p 0.95, `chat_max_tokens` 2048, as its code calls the
chat API), the judge the paper's elimination prompt, and the response the evolved
instruction itself as the user turn. The rewrite is asked of `client` (the generator
role), the response of `responder`.

Why ROUGE-L skips the ancestors: an in-depth rewrite keeps most of its parent's words by
design (it may add only 10 to 20), so it would nearly always score above 0.7 against its
own parent; whether it adds anything is the judge's question (rule 1). Against every
other instruction in the pool the engine's novelty rule applies as in Self-Instruct.

A root's text, as evolved, is its instruction followed by the input of its first
instance (when there is one), as the reference code merges Alpaca's instruction and
input; the evolved instructions carry their data in the text and have an empty input.
"""

from __future__ import annotations

import asyncio
import random
import re
import uuid
from collections import Counter, deque
from collections.abc import AsyncGenerator, Iterable, Sequence
from dataclasses import dataclass, field

from app.core.filters.decontaminate import Checker, screen
from app.core.filters.dedup import example_text
from app.core.filters.novelty import NoveltyIndex, NoveltyResult
from app.core.llm.client import LLMClient, LLMError, LLMUnavailableError
from app.core.llm.dialects import Dialect, Request
from app.core.methods import evol_rules, prompts
from app.core.methods.candidates import (
    CandidateRecord,
    InstanceCandidate,
    NearDuplicates,
    StoredCandidate,
    TooManyFailures,
)
from app.core.params import EvolInstructParams
from app.core.seeds import SeedTaskData

# Stops for the few-shot prompts: each demo ends at a blank line, and a base model that
# goes on starts the next "#Given Prompt#" / "#Instruction#" line.
REWRITE_STOP = ["\n\n", "\n#"]
RESPONSE_STOP = ["\n\n", "\n#"]
JUDGE_STOP = ["\n"]
# a chat model may repeat the prompt's label before its rewrite: "#Rewritten Prompt#:"
_LEADING_LABEL = re.compile(r"^\s*#*\s*(?:the\s+)?(?:rewritten|created)\s+prompt\s*#*\s*:?\s*", re.IGNORECASE)


def root_text(instruction: str, instances: Sequence[dict[str, str]] | Sequence[InstanceCandidate]) -> str:
    """What a root is evolved as: the instruction, then its first instance's input."""
    if not instances:
        return instruction
    first = instances[0]
    data = first["input"] if isinstance(first, dict) else first.input
    return f"{instruction}\n{data.strip()}" if data.strip() else instruction


@dataclass
class Lineage:
    """One root and what survived of it: the tip is evolved next round."""

    index: int
    tip: CandidateRecord | StoredCandidate
    tip_text: str
    ancestors: list[str] = field(default_factory=list)  # pool texts of the chain, root first
    done_round: int = 0  # the last round that evolved this lineage (0: none yet)


@dataclass
class _Outcome:
    """A finished evolution attempt, before the event loop's pool checks."""

    lineage: Lineage
    record: CandidateRecord


class EvolInstruct:
    """One Evol-Instruct job's engine. See the module docstring for the method."""

    def __init__(
        self,
        params: EvolInstructParams,
        client: LLMClient,
        pool: Sequence[SeedTaskData],
        previous: Sequence[StoredCandidate] = (),
        concurrency: int = 8,
        near_duplicates: NearDuplicates | None = None,
        job_key: str = "job",
        decontaminate: Checker | None = None,
        known: Iterable[str] = (),
        known_examples: Iterable[tuple[str, str]] = (),
        responder: LLMClient | None = None,
    ):
        """`known` and `known_examples` are what the data already holds beyond this job (a
        dataset's instructions, and its examples as (key, text) for the near-duplicate
        index): an evolution too close to any of them is rejected like one too close to the
        pool. They join the pool's counts, so a lineage's own ancestors are left out of its
        check even when the dataset holds them too (an evolution resembles its parent by
        design); they are never evolved."""
        pool = list(pool)[: params.max_pool] if params.max_pool else list(pool)
        if not pool:
            raise ValueError("Evol-Instruct needs at least one instruction to evolve")
        self.p = params
        self.client = client
        self.responder = responder or client  # answers the evolved instructions
        self.concurrency = concurrency
        self.near_duplicates = near_duplicates
        self.decontaminate = decontaminate  # benchmark items no evolution may reproduce
        self.job_key = job_key
        self.operations = [op for op, w in params.operations.items() if w > 0]
        self.weights = [params.operations[op] for op in self.operations]
        self.index = NoveltyIndex(
            threshold=params.rouge_l_threshold,
            top_k=params.similar_top_k,
            mean_sample=params.mean_similarity_sample,
            seed=params.seed or 0,
        )
        self._pool_counts: Counter[str] = Counter()  # pool text -> entries (to skip ancestors exactly)
        self._rng = random.Random()  # operation draws when the job has no seed
        self._consecutive_failures = 0
        self.lineages: list[Lineage] = []
        self._new_roots: list[CandidateRecord] = []
        for text in known:
            self.index.add(text)
            self._pool_counts[text] += 1
        if near_duplicates is not None:
            near_duplicates.check_and_add_many(known_examples)
        self._restore(pool, previous)

    # --- state: new job or resumed one -----------------------------------------------------
    def _restore(self, pool: list[SeedTaskData], previous: Sequence[StoredCandidate]) -> None:
        """Rebuild lineages, tips, the pool and the near-duplicate index from stored rows."""
        stored_roots = [c for c in previous if c.parent_id is None]
        if len(stored_roots) > len(pool) or any(
            c.instruction != t.instruction for c, t in zip(stored_roots, pool)
        ):
            raise ValueError("the stored roots do not match the job's source any more; start a new job")
        for i, root in enumerate(stored_roots):
            self._add_lineage(i, root, root_text(root.instruction, root.instances))
        for i, task in enumerate(pool[len(stored_roots):], start=len(stored_roots)):
            record = CandidateRecord(
                task.instruction,
                accepted=True,
                in_pool=True,
                is_classification=task.is_classification,
                instances=[InstanceCandidate(x.get("input", ""), x.get("output", "")) for x in task.instances],
                round=0,
                detail={"root": True, **({"name": task.name} if task.name else {}), **task.origin},
            )
            self._new_roots.append(record)
            self._add_lineage(i, record, root_text(task.instruction, task.instances))
        by_row = {c.row_id: self.lineages[i] for i, c in enumerate(stored_roots)}
        for c in previous:
            if c.parent_id is None:
                continue
            lineage = by_row.get(c.parent_id)
            if lineage is None:
                raise ValueError(f"stored evolution {c.row_id} has a parent outside this job")
            by_row[c.row_id] = lineage
            lineage.done_round = max(lineage.done_round, c.round)
            if c.accepted:
                self._survive(lineage, c, c.instruction)
        if self.near_duplicates is not None:
            self.near_duplicates.check_and_add_many(
                (f"row{c.row_id}:0", self._dup_text(c)) for c in previous if c.accepted and c.parent_id is not None
            )

    def _add_lineage(self, i: int, root: CandidateRecord | StoredCandidate, text: str) -> None:
        lineage = Lineage(i, root, text, [text])
        self.index.add(text)
        self._pool_counts[text] += 1
        self.lineages.append(lineage)

    def _survive(self, lineage: Lineage, record: CandidateRecord | StoredCandidate, text: str) -> None:
        lineage.tip, lineage.tip_text = record, text
        lineage.ancestors.append(text)
        self.index.add(text)
        self._pool_counts[text] += 1

    @staticmethod
    def _dup_text(record: CandidateRecord | StoredCandidate) -> str:
        instances = record.instances
        output = "" if not instances else (instances[0]["output"] if isinstance(instances[0], dict) else instances[0].output)
        return example_text(record.instruction, "", output)

    # --- the loop ----------------------------------------------------------------------------
    async def run(self) -> AsyncGenerator[CandidateRecord, None]:
        for root in self._new_roots:
            yield root
        self._new_roots = []
        for round_ in range(1, self.p.rounds + 1):
            todo = deque(lin for lin in self.lineages if lin.done_round < round_)
            running: set[asyncio.Task[_Outcome]] = set()
            try:
                while todo or running:
                    while todo and len(running) < max(self.concurrency, self.client.capacity):  # the adaptive limit
                        running.add(asyncio.create_task(self._evolve(todo.popleft(), round_)))
                    done, running = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
                    for task in done:
                        outcome = self._result(task)
                        yield self._decide(outcome)
            finally:
                for task in running:
                    task.cancel()
                await asyncio.gather(*running, return_exceptions=True)

    def _result(self, task: asyncio.Task[_Outcome]) -> _Outcome:
        outcome: _Outcome = task.result()  # LLMUnavailableError and TooManyFailures propagate
        if outcome.record.rule == "llm_error":
            self._consecutive_failures += 1
            if self._consecutive_failures >= max(10, 2 * self.concurrency):
                raise TooManyFailures(
                    f"{self._consecutive_failures} evolutions in a row failed on the model server; "
                    f"last: {outcome.record.detail.get('error')}"
                )
        else:
            self._consecutive_failures = 0
        return outcome

    def _decide(self, outcome: _Outcome) -> CandidateRecord:
        """The pool checks, on the event loop so that no two results race for the pool."""
        record, lineage = outcome.record, outcome.lineage
        lineage.done_round = max(lineage.done_round, record.round)
        if record.accepted:
            # benchmark decontamination first, then the pool checks
            rule = screen(self.decontaminate, record) if self.decontaminate is not None else None
            rule = rule or self._novelty(record, lineage)
            if rule is None and self.near_duplicates is not None:
                key = f"{self.job_key}:{uuid.uuid4().hex}"
                if self.near_duplicates.check_and_add(key, self._dup_text(record)):
                    rule = "near_duplicate"
            if rule:
                record.accepted, record.rule = False, rule
        if record.accepted:
            record.in_pool = True
            self._survive(lineage, record, record.instruction)
        return record

    # --- one evolution -----------------------------------------------------------------------
    def choose_operation(self, round_: int, lineage: int) -> str:
        rng = self._rng if self.p.seed is None else random.Random(f"{self.p.seed}:{round_}:{lineage}:op")
        return rng.choices(self.operations, weights=self.weights, k=1)[0]

    def _request_seed(self, round_: int, lineage: int, stage: str) -> int | None:
        if self.p.seed is None:
            return None
        return random.Random(f"{self.p.seed}:{round_}:{lineage}:{stage}").getrandbits(31)

    async def _evolve(self, lineage: Lineage, round_: int) -> _Outcome:
        operation = self.choose_operation(round_, lineage.index)
        record = CandidateRecord("", accepted=False, parent=lineage.tip, operation=operation, round=round_)
        stage = "rewrite"
        try:
            await self._rewrite(record, lineage)
            if record.rule is None:
                stage = "judge"
                await self._judge(record, lineage)
            if record.rule is None:
                stage = "response"
                await self._respond(record, lineage)
        except LLMUnavailableError:
            raise
        except LLMError as exc:
            record.rule = "llm_error"
            record.detail.update(error=str(exc)[:500], stage=stage)
        record.accepted = record.rule is None
        return _Outcome(lineage, record)

    async def _rewrite(self, record: CandidateRecord, lineage: Lineage) -> None:
        seed = self._request_seed(record.round, lineage.index, "rewrite")

        def request(dialect: Dialect) -> Request:
            if dialect == "chat":
                user = prompts.messages(f"chat_evol_{record.operation}", instruction=lineage.tip_text)
                return Request("chat", messages=user, params=dict(
                    max_tokens=self.p.chat_max_tokens, temperature=self.p.temperature, top_p=self.p.top_p, seed=seed))
            prompt = prompts.render(f"evol_{record.operation}", instruction=lineage.tip_text).rstrip()
            return Request("completions", prompt=prompt, params=dict(
                max_tokens=self.p.max_tokens, temperature=self.p.temperature, top_p=self.p.top_p,
                stop=REWRITE_STOP, seed=seed))

        reply = await self.client.ask(request)
        text = reply.text.strip()
        if reply.dialect == "chat":
            text = _LEADING_LABEL.sub("", text, count=1).strip()
        record.instruction = text
        if reply.finish_reason == "length":
            record.rule = "truncated_evolution"
        elif not text:
            record.rule = "empty"
        elif evol_rules.copies_scaffolding(text):
            record.rule = "copied_scaffolding"
        elif reason := evol_rules.no_information_gain(text, lineage.tip_text, lineage.ancestors,
                                                      self.p.max_parent_rouge_l):
            record.rule = "no_information_gain"
            record.detail["judge"] = reason  # decided without asking the judge
        else:
            record.rule = self._novelty(record, lineage)

    async def _judge(self, record: CandidateRecord, lineage: Lineage) -> None:
        parent, child = _one_line(lineage.tip_text), _one_line(record.instruction)
        params = dict(max_tokens=self.p.judge_max_tokens, temperature=0, top_p=1, stop=JUDGE_STOP,
                      seed=self._request_seed(record.round, lineage.index, "judge"))

        def request(dialect: Dialect) -> Request:
            if dialect == "chat":
                return Request("chat", messages=prompts.messages("chat_evol_judge", parent=parent, child=child),
                               params=params)
            prompt = prompts.render("evol_judge", parent=parent, child=child)
            return Request("completions", prompt=prompt.rstrip(), params=params)

        reply = await self.client.ask(request, role="judge")  # the elimination judge: the judge role's tokens
        verdict = evol_rules.parse_judge(reply.text)
        record.detail["judge_answer"] = reply.text.strip()[:200]
        if verdict is None:
            record.detail["judge"] = "unparseable"
            if self.p.judge_unparseable == "reject":
                record.rule = "judge_unparseable"
        elif verdict:
            record.detail["judge"] = "equal"
            record.rule = "no_information_gain"
        else:
            record.detail["judge"] = "not_equal"

    async def _respond(self, record: CandidateRecord, lineage: Lineage) -> None:
        seed = self._request_seed(record.round, lineage.index, "response")
        sampling = dict(temperature=self.p.response_temperature, top_p=self.p.response_top_p)

        def request(dialect: Dialect) -> Request:
            if dialect == "chat":
                user = prompts.messages("chat_evol_response", instruction=record.instruction)
                return Request("chat", messages=user,
                               params=dict(max_tokens=self.p.chat_max_tokens, **sampling, seed=seed))
            prompt = prompts.render("evol_response", instruction=record.instruction).rstrip()
            return Request("completions", prompt=prompt, params=dict(
                max_tokens=self.p.response_max_tokens, **sampling, stop=RESPONSE_STOP, seed=seed))

        reply = await self.responder.ask(request, role="responder")
        response = reply.text.strip()
        record.instances = [InstanceCandidate("", response)]
        rule = evol_rules.response_rule(response, reply.finish_reason, self.p.sorry_max_words)
        if rule:
            record.rule = rule

    def _novelty(self, record: CandidateRecord, lineage: Lineage) -> str | None:
        """ROUGE-L against the pool less this lineage's ancestors; stores the scores."""
        result = self._check_without(record.instruction, set(lineage.ancestors))
        record.max_rouge_l = result.max_rouge_l
        record.most_similar = [{"instruction": t, "rouge_l": round(s, 6)} for t, s in result.most_similar]
        record.mean_rouge_l = result.mean_rouge_l
        return None if result.novel else "too_similar"

    def _check_without(self, text: str, excluded: set[str]) -> NoveltyResult:
        """`NoveltyIndex.check` with the entries whose text is in `excluded` left out.

        The index returns an exact top-k; asking for k plus the number of excluded entries
        and dropping those leaves the exact top-k (and maximum) of the others."""
        k = self.p.similar_top_k
        skip = sum(self._pool_counts[t] for t in excluded)
        self.index.top_k = max(k, 1) + skip
        try:
            result = self.index.check(text)
        finally:
            self.index.top_k = k
        others = [(t, s) for t, s in result.most_similar if t not in excluded]
        best = others[0][1] if others else 0.0
        return NoveltyResult(best, others[:k], result.mean_rouge_l, best <= self.p.rouge_l_threshold)


def _one_line(text: str) -> str:
    """The judge's demos are one line per instruction."""
    return " ".join(text.split())
