"""Self-Instruct bootstrapping (Wang et al., 2022): seeds in, curated instructions out.

The loop, as in the paper:
1. prompt the model with 8 in-context instructions (6 human, 2 from the machine pool,
   shuffled) as a numbered list, and let it continue the list;
2. parse the new items and filter each: the heuristic rules, then ROUGE-L novelty
   against the whole pool; a survivor joins the pool at once, so the next candidate is
   compared with it too;
3. ask whether the task is classification;
4. generate instances: output-first for classification, input-first otherwise;
5. filter the instances; a task with none left is rejected with the reason.

Concurrency: up to `concurrency` generation requests are in flight at any time, and the
per-task requests (3, 4) of accepted instructions are started as soon as they are
accepted, so the server is never idle while the pool grows. Filtering runs on the event
loop between awaits, in the order responses arrive, so the pool is never raced.

Dialects: the client's dialect (`app.core.llm.dialects`) picks the prompts. `completions`
sends the paper's few-shot continuations as they are; `chat` sends the `chat_*` prompt
files as messages (the in-context tasks and the request in the user turn) and, with
`structured` on, asks for instances as JSON (`app.core.methods.structured`): a reply that does not
parse rejects the task as `unparseable`, its text kept.

Departures from the reference code, following the paper: the reference code
`capitalize()`s every instruction (lower-casing the rest of it); Sprout keeps the text
as generated. Each request is sent alone with its own seed rather than as `n` choices,
because some servers return identical choices for `n > 1`.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import AsyncGenerator, Callable, Iterable, Sequence

from app.core.filters.decontaminate import Checker, screen
from app.core.filters.dedup import example_text
from app.core.filters.heuristics import filter_instances, instruction_rule
from app.core.filters.novelty import NoveltyIndex
from app.core.llm.client import Completion, LLMClient, LLMError, LLMUnavailableError
from app.core.llm.dialects import Dialect, Request
from app.core.methods import prompts
from app.core.methods import structured as json_replies
from app.core.methods.candidates import (
    CandidateRecord,
    InstanceCandidate,
    NearDuplicates,
    StoredCandidate,
    TooManyFailures,
)
from app.core.methods.parsing import (
    numbered_list,
    parse_input_first,
    parse_instruction_list,
    parse_numbered_reply,
    parse_output_first,
    parse_yes_no,
)
from app.core.params import SelfInstructParams
from app.core.seeds import SeedTaskData


class SelfInstruct:
    """One Self-Instruct job's engine. See the module docstring for the loop."""

    def __init__(
        self,
        params: SelfInstructParams,
        client: LLMClient,
        seeds: Sequence[SeedTaskData],
        previous: Sequence[StoredCandidate] = (),
        concurrency: int = 8,
        near_duplicates: NearDuplicates | None = None,
        job_key: str = "job",
        known: Iterable[str] = (),
        known_examples: Iterable[tuple[str, str]] = (),
        decontaminate: Checker | None = None,
        responder: LLMClient | None = None,
        structured: bool = True,
    ):
        """`known` and `known_examples` are what the data already holds beyond this job
        (a dataset's instructions, and its examples as (key, text) for the near-duplicate
        index): a candidate too close to any of them is rejected like one too close to the
        pool, but they are never shown to the model as demonstrations.

        `client` generates instructions (the generator role); `responder` (default: the
        same) classifies them and writes their instances. `structured`: JSON instances on
        the chat API."""
        if len(seeds) < params.prompt_instructions - params.prompt_machine_instructions:
            raise ValueError(
                f"Self-Instruct needs at least {params.prompt_instructions - params.prompt_machine_instructions} "
                f"seed tasks for its prompts; the seed set has {len(seeds)}"
            )
        self.p = params
        self.client = client
        self.responder = responder or client
        self.structured = structured
        self.seeds = [s.instruction for s in seeds]
        self.concurrency = concurrency
        self.near_duplicates = near_duplicates
        self.decontaminate = decontaminate  # benchmark items no candidate may reproduce
        self.job_key = job_key
        self.index = NoveltyIndex(
            threshold=params.rouge_l_threshold,
            top_k=params.similar_top_k,
            mean_sample=params.mean_similarity_sample,
            seed=params.seed or 0,
        )
        for text in self.seeds:
            self.index.add(text)
        for text in known:
            self.index.add(text)
        self.machine = [c.instruction for c in previous if c.in_pool]
        for text in self.machine:
            self.index.add(text)
        if near_duplicates is not None:
            near_duplicates.check_and_add_many(known_examples)
            # a resumed job (or one sharing an index) must see what was kept before
            near_duplicates.check_and_add_many(
                (f"row{c.row_id}:{i}", example_text(c.instruction, x["input"], x["output"]))
                for c in previous
                if c.accepted
                for i, x in enumerate(c.instances)
            )
        self.curated = sum(1 for c in previous if c.accepted)
        self.decisions = max((c.detail.get("novelty_decision", 0) for c in previous), default=0)
        self.requests = len(previous)  # advances request seeds past a previous attempt's
        self.rng = random.Random(params.seed if params.seed is not None else None)
        if params.seed is not None:
            self.rng.seed(f"{params.seed}:{len(previous)}")
        self.max_requests = max(100, 20 * params.target)
        self._consecutive_failures = 0

    # --- the loop ----------------------------------------------------------------------
    async def run(self) -> AsyncGenerator[CandidateRecord, None]:
        generating: set[asyncio.Task[tuple[Completion, int]]] = set()
        completing: dict[asyncio.Task[CandidateRecord], CandidateRecord] = {}
        sent = 0
        try:
            while self.curated < self.p.target:
                while (
                    len(generating) < max(self.concurrency, self.client.capacity)  # follows the adaptive limit
                    and self.curated + len(completing) < self.p.target
                    and sent < self.max_requests
                ):
                    generating.add(asyncio.create_task(self._generate()))
                    sent += 1
                if not generating and not completing:
                    return  # request budget spent
                done, _ = await asyncio.wait(generating | completing.keys(), return_when=asyncio.FIRST_COMPLETED)
                for asked in [t for t in generating if t in done]:
                    generating.discard(asked)
                    response = self._result(asked)
                    if response is None:
                        continue
                    for record in self._filter(*response):
                        if record.in_pool:
                            completing[asyncio.create_task(self._complete_task(record))] = record
                        else:
                            yield record
                for completed in [t for t in completing if t in done]:
                    record = completing.pop(completed)
                    completed.result()
                    if record.accepted:
                        if self.curated >= self.p.target:
                            record.accepted, record.rule = False, "over_target"
                        else:
                            self.curated += 1
                    yield record
            # Target met: what is still in flight joined the pool but is not part of the
            # dataset; stored all the same, so every decided candidate has a row.
            for task, record in list(completing.items()):
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
                del completing[task]
                record.accepted, record.rule = False, "over_target"
                yield record
        finally:
            pending = [*generating, *completing]
            for left in pending:
                left.cancel()
            await asyncio.gather(*pending, return_exceptions=True)

    def _result(self, task: asyncio.Task[tuple[Completion, int]]) -> tuple[Completion, int] | None:
        try:
            result = task.result()
        except LLMUnavailableError:
            raise
        except LLMError as exc:
            self._failure(exc)
            return None
        self._consecutive_failures = 0
        return result

    def _failure(self, exc: LLMError) -> None:
        self._consecutive_failures += 1
        if self._consecutive_failures >= max(10, 2 * self.concurrency):
            raise TooManyFailures(f"{self._consecutive_failures} requests in a row failed; last: {exc}") from exc

    # --- 1. instruction generation -----------------------------------------------------
    def prompt_instructions(self) -> list[str]:
        """6 human + 2 machine instructions (all human while the pool has no machine ones)."""
        n_machine = min(self.p.prompt_machine_instructions, len(self.machine))
        n_human = min(self.p.prompt_instructions - n_machine, len(self.seeds))
        chosen = self.rng.sample(self.machine, n_machine) + self.rng.sample(self.seeds, n_human)
        self.rng.shuffle(chosen)
        return chosen

    def _request_seed(self) -> int | None:
        self.requests += 1
        if self.p.seed is None:
            return None
        return (self.p.seed * 1_000_003 + self.requests) % (2**31)

    async def _generate(self) -> tuple[Completion, int]:
        examples = self.prompt_instructions()
        n = self.p.stop_at_item
        seed = self._request_seed()
        sampling = dict(max_tokens=self.p.max_tokens, temperature=self.p.temperature, top_p=self.p.top_p,
                        presence_penalty=self.p.presence_penalty, frequency_penalty=self.p.frequency_penalty)

        def request(dialect: Dialect) -> Request:
            if dialect == "chat":
                first = len(examples) + 1
                user = prompts.messages("chat_self_instruct_generate", tasks=numbered_list(examples).rsplit("\n", 1)[0],
                                        count=str(max(1, n - first)), first=str(first))
                return Request("chat", messages=user, params={**sampling, "stop": [f"\n{n}.", f"\n{n})"], "seed": seed})
            prompt = prompts.render("self_instruct_generate", tasks=numbered_list(examples)).rstrip()
            stop = [f"\n{n}.", f"\n{n} ."]
            if self.p.stop_on_blank_line:
                stop.append("\n\n")
            return Request("completions", prompt=prompt, params={**sampling, "stop": stop, "seed": seed})

        completion = await self.client.ask(request)
        return completion, len(examples) + 1

    # --- 2. filters ----------------------------------------------------------------------
    def _filter(self, completion: Completion, first_number: int) -> list[CandidateRecord]:
        if completion.dialect == "chat":
            texts = parse_numbered_reply(completion.text)
        else:
            texts = parse_instruction_list(completion.text, first_number)
        if completion.finish_reason == "length":
            return [CandidateRecord(t, accepted=False, rule="truncated_response") for t in texts]
        records = []
        for text in texts:
            rule = instruction_rule(text, self.p.min_words, self.p.max_words, self.p.blacklist)
            if rule:
                records.append(CandidateRecord(text, accepted=False, rule=rule))
                continue
            if self.decontaminate is not None:  # benchmark decontamination, before the pool sees it
                checked = CandidateRecord(text, accepted=False)
                if screen(self.decontaminate, checked):
                    checked.rule = "contaminated"
                    records.append(checked)
                    continue
            novelty = self.index.check(text)
            self.decisions += 1
            similar = [{"instruction": t, "rouge_l": round(s, 6)} for t, s in novelty.most_similar]
            record = CandidateRecord(
                text,
                accepted=novelty.novel,
                rule=None if novelty.novel else "too_similar",
                max_rouge_l=novelty.max_rouge_l,
                most_similar=similar,
                mean_rouge_l=novelty.mean_rouge_l,
                # storage order differs from decision order (accepted ones wait for their
                # instances); this says which pool the decision saw
                detail={"novelty_decision": self.decisions},
            )
            if novelty.novel:
                record.in_pool = True
                self.index.add(text)
                self.machine.append(text)
            records.append(record)
        return records

    # --- 3-5. classification, instances, instance filters --------------------------------
    async def classify(self, instruction: str) -> tuple[bool, str]:
        seed = self._request_seed()
        sampling = dict(max_tokens=self.p.classify_max_tokens, temperature=0, top_p=1)

        def request(dialect: Dialect) -> Request:
            if dialect == "chat":
                return Request("chat", messages=prompts.messages("chat_self_instruct_classify", instruction=instruction),
                               params={**sampling, "seed": seed})
            prompt = prompts.render("self_instruct_classify", instruction=instruction).rstrip()
            return Request("completions", prompt=prompt, params={**sampling, "stop": ["\n"], "seed": seed})

        reply = await self.responder.ask(request, role="responder")
        answer = parse_yes_no(reply.text)
        return bool(answer), reply.text.strip()

    def _instances_request(self, instruction: str, is_clf: bool, seed: int | None) -> Callable[[Dialect], Request]:
        sampling = dict(max_tokens=self.p.instance_max_tokens, temperature=self.p.instance_temperature, top_p=1)

        def request(dialect: Dialect) -> Request:
            if dialect == "chat":
                name = "chat_self_instruct_instances_" + ("output_first" if is_clf else "input_first")
                if self.structured:
                    first, second = ("output", "input") if is_clf else ("input", "output")
                    form = prompts.render("chat_format_json", first=first, second=second)
                    schema = json_replies.instances_schema(is_clf, self.p.max_instances)
                else:
                    form = prompts.load("chat_format_" + ("output_first" if is_clf else "input_first"))
                    schema = None
                user = prompts.messages(name, instruction=instruction, count=str(self.p.max_instances), format=form)
                return Request("chat", messages=user, params={**sampling, "seed": seed}, schema=schema,
                               schema_name="instances")
            template = "self_instruct_instances_output_first" if is_clf else "self_instruct_instances_input_first"
            prompt = prompts.render(template, instruction=instruction)
            # The demos end each task's examples with a blank line; without that stop a
            # small model at temperature 0 repeats "Example 1" until max_tokens.
            stop = ["\n\n", "\nTask:", f"Example {self.p.max_instances + 1}"]
            return Request("completions", prompt=prompt, params={**sampling, "stop": stop, "seed": seed})

        return request

    async def _complete_task(self, record: CandidateRecord) -> CandidateRecord:
        try:
            is_clf, answer = await self.classify(record.instruction)
            reply = await self.responder.ask(self._instances_request(record.instruction, is_clf, self._request_seed()),
                                             role="responder")
        except LLMUnavailableError:
            raise
        except LLMError as exc:
            record.accepted, record.rule = False, "llm_error"
            record.detail["error"] = str(exc)[:500]
            return record
        record.is_classification = is_clf
        record.detail["classification_answer"] = answer
        if reply.dialect == "chat" and self.structured and reply.finish_reason != "length":
            parsed = json_replies.parse_instances(reply.text)
            if parsed is None:
                record.accepted, record.rule = False, json_replies.UNPARSEABLE
                record.detail["reply"] = reply.text[:json_replies.REPLY_CHARS]
                return record
            instances = parsed
        elif is_clf:
            instances = parse_output_first(reply.text)
        else:
            instances = parse_input_first(reply.text)
        task_rule = filter_instances(instances, reply.finish_reason == "length", self.p.max_instances)
        if task_rule is None and self.decontaminate is not None:  # benchmark decontamination of the instances
            record.instances = instances
            task_rule = screen(self.decontaminate, record)
        if task_rule is None and self.near_duplicates is not None:
            task_rule = self._near_duplicates(record, instances)
        record.instances = instances
        if task_rule:
            record.accepted, record.rule = False, task_rule
        return record

    def _near_duplicates(self, record: CandidateRecord, instances: Sequence[InstanceCandidate]) -> str | None:
        """Reject instances that near-duplicate an example already kept (in any job
        sharing the index); the task is rejected when none is left."""
        near_duplicates = self.near_duplicates
        if near_duplicates is None:
            return None
        kept = 0
        for inst in instances:
            if not inst.accepted:
                continue
            key = f"{self.job_key}:{uuid.uuid4().hex}"
            if near_duplicates.check_and_add(key, example_text(record.instruction, inst.input, inst.output)):
                inst.rule = "near_duplicate"
            else:
                kept += 1
        return None if kept else "near_duplicate"
