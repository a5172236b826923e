"""An LLM judge: a quality and a complexity score per example, on a 1-6 scale.

After Deita (Liu et al., 2023) and AlpaGasus (Chen et al., 2023): the judge is asked for
one digit (`app/core/methods/prompts/judge_quality.txt`, `judge_complexity.txt`), its answer is
parsed strictly (`answers.parse_score`), and where the server returns token
log-probabilities the score is the expected value over the score tokens
(`answers.expected_score`), else the parsed digit. Complexity is judged on the
instruction (with its input), quality on the whole example.

Any OpenAI-compatible endpoint may judge, through an `LLMClient` of its own (its base URLs
and model, not the generator's). A server that ignores `logprobs` gives the parsed digit;
one that refuses the field (a 4xx) is asked again without it, once per judge.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

from app.core.llm.client import Completion, LLMClient, LLMError, LLMUnavailableError
from app.core.methods import prompts, structured
from app.core.scoring.answers import expected_score, parse_score

ASPECTS = ("quality", "complexity")
OK, UNPARSEABLE, ERROR = "ok", "unparseable", "error"
MAX_FIELD_CHARS = 4000  # a field longer than this is cut, so one long output cannot overflow the judge's context


@dataclass
class JudgeScore:
    """One aspect of one example as judged. `score`: the expected score (from
    log-probabilities) or the parsed digit, None unless `status` is "ok"; `parsed`: the
    digit the judge answered; `raw`: its answer (or the error) as it was."""

    aspect: str
    score: float | None
    parsed: int | None
    raw: str
    status: str  # "ok" | "unparseable" | "error"
    from_logprobs: bool
    judge: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _field(row: Any, name: str) -> str:
    value = row.get(name) if isinstance(row, dict) else getattr(row, name, None)
    return str(value or "")


def _cut(text: str) -> str:
    text = text.strip()
    return text if len(text) <= MAX_FIELD_CHARS else text[:MAX_FIELD_CHARS] + " [...]"


def render_example(instruction: str, input: str, output: str | None) -> str:
    """The example as the prompts' demonstrations show one (no output: the query alone)."""
    lines = [f"Instruction: {_cut(instruction)}"]
    if input.strip():
        lines.append(f"Input: {_cut(input)}")
    if output is not None:
        lines.append(f"Response: {_cut(output)}")
    return "\n".join(lines)


def prompt_for(aspect: str, instruction: str, input: str, output: str) -> str:
    """The judge's prompt for one aspect; its fixed part (the scale and the demonstrations)
    comes first, so a server with prefix caching computes it once per judge."""
    if aspect == "quality":
        return prompts.render("judge_quality", example=render_example(instruction, input, output)).rstrip()
    if aspect == "complexity":
        return prompts.render("judge_complexity", example=render_example(instruction, input, None)).rstrip()
    raise ValueError(f"unknown aspect {aspect!r}; known: {', '.join(ASPECTS)}")


def messages_for(aspect: str, instruction: str, input: str, output: str) -> list[dict[str, str]]:
    """The judge's chat turn for one aspect (`chat_judge_*`): the scale in plain words and
    the example, no demonstrations (an instruct judge follows the request)."""
    if aspect not in ASPECTS:
        raise ValueError(f"unknown aspect {aspect!r}; known: {', '.join(ASPECTS)}")
    example = render_example(instruction, input, output if aspect == "quality" else None)
    return [{"role": "user", "content": prompts.render(f"chat_judge_{aspect}", example=example).strip()}]


@dataclass
class Judge:
    """Scores examples with the model behind `client`.

    `api`: "completions" (a base model continues the prompt; the default, and what the
    embedded model serves best) or "chat" (the prompt as one user message, for
    instruction-tuned judges). `top_logprobs`: how many alternatives per token to ask for."""

    client: LLMClient
    api: Literal["completions", "chat"] = "completions"
    logprobs: bool = True
    top_logprobs: int = 10
    max_tokens: int = 4
    concurrency: int | None = None
    # on the chat API, ask for {"score": N} by JSON schema (`response_format`) and parse it strictly
    structured: bool = False

    def __post_init__(self) -> None:
        if self.api not in ("completions", "chat"):
            raise ValueError(f"api must be 'completions' or 'chat', not {self.api!r}")
        self._logprobs_refused = False

    async def name(self) -> str:
        """The judge's model name, stored with every score."""
        return await self.client.resolve_model()

    async def _send(self, prompt: str | list[dict[str, str]], logprobs: bool) -> Completion:
        params: dict[str, Any] = {"max_tokens": self.max_tokens, "temperature": 0}
        if logprobs and self.api == "completions":
            params["logprobs"] = self.top_logprobs
        elif logprobs:
            params.update(logprobs=True, top_logprobs=self.top_logprobs)
        if self.api == "completions":
            return await self.client.complete(prompt, **params)  # type: ignore[arg-type]
        if self.structured:
            params["max_tokens"] = max(self.max_tokens, 16)  # room for {"score": N}
            params["response_format"] = {"type": "json_schema", "json_schema": {
                "name": "score", "schema": structured.score_schema(), "strict": True}}
        messages = prompt if isinstance(prompt, list) else [{"role": "user", "content": prompt}]
        return await self.client.chat(messages, **params)

    async def _ask(self, prompt: str | list[dict[str, str]]) -> Completion:
        """One answer, counted as a `judge` step on the client (its tokens, cost and failures per role)."""
        try:
            answer = await self._answer(prompt)
        except LLMError as exc:
            self.client.count_step("judge", error=str(exc))
            raise
        self.client.count_step("judge", answer)
        return answer

    async def _answer(self, prompt: str | list[dict[str, str]]) -> Completion:
        want = self.logprobs and not self._logprobs_refused
        try:
            return await self._send(prompt, want)
        except LLMUnavailableError:
            raise
        except LLMError as first:
            if not want:
                raise
            # a server may refuse the field itself: asked again without it, an answer means
            # it did, and this judge stops asking; a second failure is the example's own
            try:
                answer = await self._send(prompt, False)
            except LLMUnavailableError:
                raise
            except LLMError:
                raise first from None
            self._logprobs_refused = True
            return answer

    async def score_aspect(self, aspect: str, instruction: str, input: str, output: str) -> JudgeScore:
        judge = await self.name()
        prompt: str | list[dict[str, str]] = (messages_for(aspect, instruction, input, output) if self.api == "chat"
                                               else prompt_for(aspect, instruction, input, output))
        try:
            answer = await self._ask(prompt)
        except LLMUnavailableError:
            raise  # the server is away: the job pauses, nothing is stored
        except LLMError as exc:  # this example's request failed for good (e.g. too long for the context)
            return JudgeScore(aspect, None, None, str(exc)[:500], ERROR, False, judge)
        parsed = structured.parse_score(answer.text) if self.api == "chat" and self.structured else parse_score(answer.text)
        if parsed is None:
            return JudgeScore(aspect, None, None, answer.text, UNPARSEABLE, False, judge)
        expected = expected_score(answer.logprobs)
        if expected is None:
            return JudgeScore(aspect, float(parsed), parsed, answer.text, OK, False, judge)
        return JudgeScore(aspect, round(expected, 4), parsed, answer.text, OK, True, judge)

    async def score(self, instruction: str, input: str, output: str,
                    aspects: Sequence[str] = ASPECTS) -> dict[str, JudgeScore]:
        """Every aspect of one example, asked at once."""
        for aspect in aspects:
            if aspect not in ASPECTS:
                raise ValueError(f"unknown aspect {aspect!r}; known: {', '.join(ASPECTS)}")
        results = await asyncio.gather(*(self.score_aspect(a, instruction, input, output) for a in aspects))
        return dict(zip(aspects, results, strict=True))

    async def score_many(self, rows: Iterable[Any], aspects: Sequence[str] = ASPECTS,
                         concurrency: int | None = None) -> list[dict[str, JudgeScore]]:
        """`score` for each row (an object or a dict with instruction, input, output), in
        order, with at most `concurrency` examples in flight (default: the client's)."""
        rows = list(rows)
        gate = asyncio.Semaphore(max(1, concurrency or self.concurrency or self.client.capacity))

        async def one(row: Any) -> dict[str, JudgeScore]:
            async with gate:
                return await self.score(_field(row, "instruction"), _field(row, "input"), _field(row, "output"),
                                        aspects)

        return list(await asyncio.gather(*(one(row) for row in rows)))
