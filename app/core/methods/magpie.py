"""Magpie (Xu et al., 2024): an aligned model, sent only its chat template up to a user's
words, writes the user's query; its chat API answers it. No seed tasks.

One candidate, one conversation of `n_turns` exchanges, on the model that answers (the
responder role's; the job's model servers unless a responder is set), since the template
belongs to that model:

1. the pre-query template (`magpie_templates`) goes raw to the completions endpoint with
   Magpie's sampling (temperature 1, top_p 1), stopping at the end of the user turn: the
   text is the query (counted as the generator role);
2. Magpie's query rules (`magpie_rules`: cut, empty, an answer, the language), then
   Sprout's: the length rules, benchmark decontamination, ROUGE-L novelty against the pool
   (seed tasks, a dataset's content in a build, what the job accepted; a survivor joins
   the pool at once);
3. the chat API answers the conversation so far (the responder role); the answer's rules
   (cut, stop words only, a short "sorry") and decontamination;
4. for each later turn, the conversation so far rendered in the template, then the user
   prefix, goes raw for the next query (Magpie's rules again), and the chat API answers;
5. near-duplicates over the whole conversation.

Every candidate is stored with its rule when rejected (a later turn's rule names the turn
in `detail["turn"]`). An endpoint that refuses raw completions (a chat-only API) fails the
job at once (`CompletionsRefused`): Magpie cannot work without raw access to the template.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncGenerator, Coroutine, Iterable, Sequence
from typing import Any

from app.core.filters.decontaminate import Checker, screen
from app.core.filters.dedup import example_text
from app.core.filters.heuristics import instruction_rule
from app.core.llm.client import ChatModelOnlyError, LLMClient, LLMError, LLMUnavailableError
from app.core.llm.dialects import Request
from app.core.methods import evol_rules, magpie_rules
from app.core.methods.candidate_tasks import CandidateTasks
from app.core.methods.candidates import (
    CandidateRecord,
    InstanceCandidate,
    JobInputError,
    NearDuplicates,
    StoredCandidate,
)
from app.core.methods.magpie_templates import PreQuery, TemplateError, resolve
from app.core.params import MagpieParams

# an endpoint without a completions route answers so (no chat-model wording to recognise)
_NO_COMPLETIONS = re.compile(r"/completions: HTTP (404|405|501)\b")


class CompletionsRefused(LLMUnavailableError):
    """The model server refused a raw completion: Magpie cannot run there (the job fails at once)."""


def refused_message(endpoint: str, why: str) -> str:
    return (f"magpie needs raw completions access: {endpoint}/completions refused the pre-query template "
            f"({why[:300]}); serve the instruct model with a completions endpoint (vLLM's and llama.cpp's "
            f"/v1/completions take it)")


def conversation_text(first: str, answer: str, turns: Sequence[dict[str, str]]) -> str:
    """The whole conversation as near-duplicates compare it."""
    return example_text(first, "", "\n".join([answer, *(t["content"] for t in turns)]))


class MagpieGeneration(CandidateTasks):
    """One Magpie job's engine (see the module docstring). `previous`: what an earlier attempt
    stored (its pool and curated count carry over); `pool`: instructions a query must be
    novel against besides this job's (seed tasks, a dataset's content)."""

    def __init__(self, params: MagpieParams, client: LLMClient, previous: Sequence[StoredCandidate] = (),
                 concurrency: int = 8, near_duplicates: NearDuplicates | None = None, job_key: str = "job",
                 pool: Iterable[str] = (), known_examples: Iterable[tuple[str, str]] = (),
                 decontaminate: Checker | None = None):
        self.p = params
        self.client = client
        self.concurrency = concurrency
        self.near_duplicates = near_duplicates
        self.decontaminate = decontaminate
        self.job_key = job_key
        self.template: PreQuery | None = None
        self.index = self._seed_indexes(
            params, params.seed, previous, pool, near_duplicates, known_examples,
            lambda instruction, x: conversation_text(instruction, x["output"], x.get("turns") or []))
        self.decided = len(previous)
        self.requests = 2 * len(previous) * params.n_turns
        self.target, self.seed = params.target, params.seed

    @property
    def max_candidates(self) -> int:
        return self.p.max_candidates or 20 * self.p.target

    async def resolve_template(self) -> PreQuery:
        """The responder model's pre-query template (asked once: `/props`, the model id)."""
        if self.template is None:
            props = None if self.p.pre_query_template or self.p.template != "auto" else await self.client.props()
            model = await self.client.resolve_model()
            try:
                self.template = resolve(pre_query_template=self.p.pre_query_template, template=self.p.template,
                                        end_of_turn=self.p.end_of_turn, props=props, model=model)
            except TemplateError as exc:
                raise JobInputError(f"magpie: {exc}") from None
            if self.p.n_turns > 1 and not self.template.multi_turn:
                raise JobInputError("magpie: n_turns > 1 needs a template whose turns Sprout can render; this "
                                    "pre_query_template ends with no known family's user prefix")
        return self.template

    async def run(self) -> AsyncGenerator[CandidateRecord, None]:
        await self.resolve_template()
        async for record in self.run_tasks():
            yield record

    def _start(self, state: dict[str, Any], in_flight: int) -> Coroutine[Any, Any, CandidateRecord] | None:
        if self.decided + in_flight >= self.max_candidates:
            return None  # max_candidates decided
        return self._one(state)

    async def query(self, conversation: list[dict[str, str]]) -> tuple[str, str | None]:
        """The next user turn, written by the model from the raw template: (text, finish_reason)."""
        template = await self.resolve_template()
        request = Request("completions", prompt=template.prompt(conversation),
                          params={"max_tokens": self.p.max_tokens, "temperature": self.p.temperature,
                                  "top_p": self.p.top_p, "stop": list(template.stop), "seed": self._seed()})
        built: list[Request] = []

        def build(_dialect: str) -> Request:
            if built:  # the client met a chat-only answer and would send it through the chat API
                raise CompletionsRefused(refused_message(self.client.endpoints[0], "a chat model only"))
            built.append(request)
            return request

        try:
            reply = await self.client.ask(build, role="generator")
        except ChatModelOnlyError as exc:
            raise CompletionsRefused(refused_message(self.client.endpoints[0], str(exc))) from None
        except LLMError as exc:
            if isinstance(exc, LLMUnavailableError) or not _NO_COMPLETIONS.search(str(exc)):
                raise
            raise CompletionsRefused(refused_message(self.client.endpoints[0], str(exc))) from None
        return reply.text.strip(), reply.finish_reason

    async def answer(self, conversation: list[dict[str, str]]) -> tuple[str, str | None]:
        """The chat API's answer to the conversation so far (the server applies the template)."""
        params = {"max_tokens": self.p.response_max_tokens, "temperature": self.p.response_temperature,
                  "top_p": self.p.response_top_p, "seed": self._seed()}
        reply = await self.client.ask(lambda _d: Request("chat", messages=list(conversation), params=params),
                                      role="responder")
        return reply.text.strip(), reply.finish_reason

    def answer_rule(self, text: str, finish_reason: str | None) -> str | None:
        return evol_rules.response_rule(text, finish_reason, self.p.sorry_max_words)

    async def _one(self, state: dict[str, Any]) -> CandidateRecord:
        text, finish = await self.query([])
        template = self.template
        record = CandidateRecord(text, accepted=False, detail={"template": template.name if template else None})
        record.rule = magpie_rules.query_rule(text, finish, self.p.language) or instruction_rule(
            text, self.p.min_words, self.p.max_words, self.p.blacklist)
        if record.rule:
            return record
        if self.decontaminate is not None and screen(self.decontaminate, record):
            record.rule = "contaminated"
            return record
        novelty = self.index.check(text)
        record.max_rouge_l, record.mean_rouge_l = novelty.max_rouge_l, novelty.mean_rouge_l
        record.most_similar = [{"instruction": t, "rouge_l": round(s, 6)} for t, s in novelty.most_similar]
        if not novelty.novel:
            record.rule = "too_similar"
            return record
        record.in_pool = True  # joins the pool at once: the next query is compared with it too
        self.index.add(text)
        state["record"] = record
        try:
            await self._converse(record)
        except LLMUnavailableError:
            raise
        except LLMError as exc:
            record.rule = "llm_error"
            record.detail["error"] = str(exc)[:500]
        return record

    async def _converse(self, record: CandidateRecord) -> None:
        """The answers and the later turns; sets the record's fate."""
        conversation = [{"role": "user", "content": record.instruction}]
        for turn in range(1, self.p.n_turns + 1):
            if turn > 1:
                text, finish = await self.query(conversation)
                rule = magpie_rules.query_rule(text, finish, self.p.language) or instruction_rule(
                    text, 1, self.p.max_words, [])
                if rule:
                    record.rule, record.detail["turn"], record.detail["rejected_query"] = rule, turn, text[:2000]
                    break
                conversation.append({"role": "user", "content": text})
            reply, finish = await self.answer(conversation)
            conversation.append({"role": "assistant", "content": reply})
            rule = self.answer_rule(reply, finish)
            if rule:
                record.rule, record.detail["turn"] = rule, turn
                break
        done = conversation if len(conversation) % 2 == 0 else conversation[:-1]
        if len(done) >= 2:
            record.instances = [InstanceCandidate("", done[1]["content"], turns=done[2:])]
            record.detail["exchanges"] = len(done) // 2
        if record.rule:
            if record.instances:
                record.instances[0].rule = record.rule
            return
        if self.decontaminate is not None and (rule := screen(self.decontaminate, record)):
            record.rule = rule
        elif self.near_duplicates is not None and self.near_duplicates.check_and_add(
                f"{self.job_key}:{uuid.uuid4().hex}", conversation_text(record.instruction, done[1]["content"],
                                                                       done[2:])):
            record.instances[0].rule = record.rule = "near_duplicate"
        else:
            record.accepted, record.rule = True, None
