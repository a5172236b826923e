"""The engine of the planned methods (personas, topic trees): one prompt per planned item, then
the answer and Sprout's filters.

Each planned item (`prompt()`, `messages()`, `detail()`) asks the generator for one task; the
task is answered by the responder (the generator unless the job names another model) with
Evol-Instruct's response prompt. Dialects (`app.core.llm.dialects`): `completions` sends the
item's few-shot continuation (`prompt()`); `chat` sends its `chat_*` prompt file as messages
(`messages()`), and, with `structured` on, asks for the task as JSON (`{"task": ...}`,
`app.core.methods.structured`): a reply that does not parse is rejected as `unparseable`, its text
kept. A chat reply without JSON loses a leading "Task:" label and wrapping quotes. Every
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

import re
import uuid
from collections.abc import AsyncGenerator, Coroutine, Iterable, Sequence
from typing import Any

from app.core.filters.decontaminate import Checker, screen
from app.core.filters.dedup import example_text
from app.core.filters.heuristics import instruction_rule
from app.core.llm.client import LLMClient, LLMError, LLMUnavailableError
from app.core.llm.dialects import Dialect, Request
from app.core.methods import evol_rules, prompts
from app.core.methods import structured as json_replies
from app.core.methods.candidate_tasks import CandidateTasks
from app.core.methods.candidates import CandidateRecord, InstanceCandidate, NearDuplicates, StoredCandidate
from app.core.methods.evol_instruct import RESPONSE_STOP

TASK_STOP = ["\n#", "\n\n"]
# what a chat model puts before or around the one task it was asked for
_TASK_LABEL = re.compile(r"^\s*(?:\*\*|#+\s*)?(?:the\s+)?task\s*(?:\*\*)?\s*:\s*(?:\*\*)?\s*", re.IGNORECASE)
_QUOTES = ('"', "\u201c", "\u201d", "'")


def clean_chat_task(text: str) -> str:
    """A chat reply's task without a leading "Task:" label and the quotes around it."""
    text = _TASK_LABEL.sub("", text.strip(), count=1).strip()
    if len(text) > 1 and text[0] in _QUOTES and text[-1] in _QUOTES:
        text = text[1:-1].strip()
    return text


class PlannedGeneration(CandidateTasks):
    """The engine shared by the planned methods (personas, topic trees): each planned item is one
    request for a task, answered and filtered (see the module docstring). `items` have `prompt()`
    (completions), `messages(structured)` (chat) and `detail()`; an item whose detail an earlier
    attempt stored is not asked again. `responder` (default: `client`) answers the tasks."""

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
        responder: LLMClient | None = None,
        structured: bool = True,
    ):
        self.p = params
        self.client = client
        self.responder = responder or client
        self.structured = structured
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
        params = self.p
        self.index = self._seed_indexes(params, params.seed, previous, pool, self.near_duplicates, known_examples,
                                        lambda instruction, x: example_text(instruction, x["input"], x["output"]))
        self.requests = len(previous) * 2
        self.target, self.seed = params.target, params.seed


    async def run(self) -> AsyncGenerator[CandidateRecord, None]:
        self._planned = iter(self.plan)
        async for record in self.run_tasks():
            yield record

    def _start(self, state: dict[str, Any], in_flight: int) -> Coroutine[Any, Any, CandidateRecord] | None:
        item = next(self._planned, None)  # None: every planned item was asked
        return None if item is None else self._one(item, state)

    async def _one(self, item: Any, state: dict[str, Any]) -> CandidateRecord:
        seed = self._seed()
        sampling = dict(max_tokens=self.p.max_tokens, temperature=self.p.temperature, top_p=self.p.top_p, seed=seed)

        def request(dialect: Dialect) -> Request:
            if dialect == "chat":
                return Request("chat", messages=item.messages(self.structured), params=sampling,
                               schema=json_replies.task_schema() if self.structured else None, schema_name="task")
            return Request("completions", prompt=item.prompt(), params={**sampling, "stop": TASK_STOP})

        reply = await self.client.ask(request)
        detail: dict[str, Any] = {**item.detail(), **self.extra_detail}
        text = reply.text.strip()
        if reply.dialect == "chat" and reply.finish_reason != "length":
            task = json_replies.parse_task(text) if self.structured else clean_chat_task(text)
            if task is None:
                record = CandidateRecord(text[:json_replies.REPLY_CHARS], accepted=False, detail=detail,
                                         rule=json_replies.UNPARSEABLE)
                record.detail["reply"] = reply.text[:json_replies.REPLY_CHARS]
                return record
            text = task
        record = CandidateRecord(text, accepted=False, detail=detail)
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
        seed = self._seed()
        sampling = dict(max_tokens=self.p.response_max_tokens, temperature=self.p.response_temperature,
                        top_p=self.p.response_top_p, seed=seed)

        def request(dialect: Dialect) -> Request:
            if dialect == "chat":
                return Request("chat", messages=prompts.messages("chat_evol_response", instruction=record.instruction),
                               params=sampling)
            prompt = prompts.render("evol_response", instruction=record.instruction).rstrip()
            return Request("completions", prompt=prompt, params={**sampling, "stop": RESPONSE_STOP})

        reply = await self.responder.ask(request, role="responder")
        response = reply.text.strip()
        record.instances = [InstanceCandidate("", response)]
        rule = evol_rules.response_rule(response, reply.finish_reason, self.p.sorry_max_words)
        if rule is None and self.decontaminate is not None:
            rule = screen(self.decontaminate, record)
        if rule:
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
