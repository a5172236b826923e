"""Magpie's pre-query templates: a chat model's template cut just before a user's words.

Magpie (Xu et al., 2024) sends an aligned model its own chat template up to the start of a
user turn, raw (no template applied by the server), and the model writes the user's query.
The text sent is the *pre-query template*; for a later turn, the conversation so far
rendered in the template, then the same user prefix.

Known families (`FAMILIES`): ChatML `<|im_start|>user\\n`; Llama 3
`<|begin_of_text|><|start_header_id|>user<|end_header_id|>\\n\\n`; Gemma
`<bos><start_of_turn>user\\n`; Qwen 2 and 2.5 (ChatML with their default system turn) and
Qwen 3 (ChatML, none); SmolLM2 (ChatML with its default system turn). Any other model: its template text (llama.cpp's `/props`
`chat_template`) rendered with jinja2, as Hugging Face renders it, with a sentinel user
message, and cut before the sentinel (`from_chat_template`); or a prefix given as it is.

The template's default system turn. A template that always adds a system turn when the
conversation has none (SmolLM2's: "You are a helpful AI assistant named SmolLM, trained by
Hugging Face"; Qwen 2's "You are a helpful assistant.") is rendered with it, because the
model was trained with it there: magpie-align's own configurations do the same (its Qwen 2
pre-query template starts with that system turn), while distilabel prepends only a system
prompt the user gives. Sprout follows magpie-align; cutting the rendered template before
the sentinel does it for any template text.

Pure functions: no HTTP, no SQL. `resolve` picks the template from what the job knows.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from jinja2.sandbox import ImmutableSandboxedEnvironment

from app.core.errors import InvalidInput

SENTINEL = "\u2063MAGPIE-QUERY\u2063"  # a user message no template holds: where the query will go


class TemplateError(InvalidInput):
    """A pre-query template cannot be made from what was given; says what to set instead."""


@dataclass(frozen=True)
class PreQuery:
    """How one model's chat template frames a conversation for Magpie.

    `prompt(conversation)`: the raw text sent to the completions endpoint for the next user
    turn (the conversation so far, then the user prefix); `stop`: the end-of-turn strings
    a query stops at."""

    name: str  # a family (chatml, llama3, gemma, qwen2, qwen2.5, qwen3), "template", or "given"
    stop: tuple[str, ...]
    system: str | None = None  # the default system turn the template adds, when it adds one
    # a known family's pieces (format strings with {content})
    bos: str = ""
    system_turn: str = ""
    user_turn: str = ""
    assistant_turn: str = ""
    user_prefix: str = ""
    # a template text (jinja2) and its special tokens, for a template derived from one
    template: str | None = None
    tokens: Mapping[str, str] = field(default_factory=dict)

    @property
    def prefix(self) -> str:
        """The first turn's pre-query template."""
        return self.prompt([])

    @property
    def multi_turn(self) -> bool:
        """Whether a conversation can be rendered in it (a prefix given as it is cannot)."""
        return self.template is not None or bool(self.user_turn)

    def prompt(self, conversation: Sequence[Mapping[str, str]]) -> str:
        """The conversation so far (user and assistant messages) and the next user prefix."""
        if self.template is not None:
            return cut_before_sentinel(self.template, list(conversation), self.tokens)
        if conversation and not self.user_turn:
            raise TemplateError("this pre_query_template ends with no known family's user prefix, so a "
                                "conversation cannot be rendered in it: n_turns must be 1")
        head = self.bos + (self.system_turn.format(content=self.system) if self.system is not None else "")
        body = "".join((self.user_turn if m["role"] == "user" else self.assistant_turn).format(content=m["content"])
                       for m in conversation)
        return head + body + self.user_prefix


def _chatml(name: str, system: str | None = None) -> PreQuery:
    return PreQuery(name, stop=("<|im_end|>", "<|im_start|>", "<|endoftext|>"), system=system,
                    system_turn="<|im_start|>system\n{content}<|im_end|>\n",
                    user_turn="<|im_start|>user\n{content}<|im_end|>\n",
                    assistant_turn="<|im_start|>assistant\n{content}<|im_end|>\n",
                    user_prefix="<|im_start|>user\n")


FAMILIES: dict[str, PreQuery] = {
    "chatml": _chatml("chatml"),
    "llama3": PreQuery(
        "llama3", stop=("<|eot_id|>", "<|start_header_id|>", "<|end_of_text|>"), bos="<|begin_of_text|>",
        system_turn="<|start_header_id|>system<|end_header_id|>\n\n{content}<|eot_id|>",
        user_turn="<|start_header_id|>user<|end_header_id|>\n\n{content}<|eot_id|>",
        assistant_turn="<|start_header_id|>assistant<|end_header_id|>\n\n{content}<|eot_id|>",
        user_prefix="<|start_header_id|>user<|end_header_id|>\n\n"),
    "gemma": PreQuery(
        "gemma", stop=("<end_of_turn>", "<start_of_turn>", "<eos>"), bos="<bos>",
        user_turn="<start_of_turn>user\n{content}<end_of_turn>\n",
        assistant_turn="<start_of_turn>model\n{content}<end_of_turn>\n",
        user_prefix="<start_of_turn>user\n"),
    "qwen2": _chatml("qwen2", "You are a helpful assistant."),
    "qwen2.5": _chatml("qwen2.5", "You are Qwen, created by Alibaba Cloud. You are a helpful assistant."),
    "qwen3": _chatml("qwen3"),
    # Sprout's embedded chat model (SmolLM2 Instruct): ChatML with its template's default system turn
    "smollm2": _chatml("smollm2", "You are a helpful AI assistant named SmolLM, trained by Hugging Face"),
}

# a model id's family, when nothing better is known (the first pattern that matches)
_NAME_FAMILIES = (
    (re.compile(r"qwen[-_ ]?2\.5|qwen2_5"), "qwen2.5"),
    (re.compile(r"qwen[-_ ]?3"), "qwen3"),
    (re.compile(r"qwen[-_ ]?2|qwen[-_ ]?1\.5"), "qwen2"),
    (re.compile(r"llama[-_ ]?3"), "llama3"),
    (re.compile(r"gemma"), "gemma"),
    (re.compile(r"smollm2"), "smollm2"),
)


def family(name: str) -> PreQuery:
    """A known family's template; a `TemplateError` naming the known ones for any other name."""
    try:
        return FAMILIES[name]
    except KeyError:
        raise TemplateError(f"unknown template {name!r}; known: {', '.join(FAMILIES)}") from None


def from_model_name(model: str | None) -> PreQuery | None:
    """The family a model id names (Llama 3, Gemma, Qwen, SmolLM2), or None."""
    low = (model or "").lower()
    for pattern, name in _NAME_FAMILIES:
        if pattern.search(low):
            return FAMILIES[name]
    return None


def given(prefix: str, stop: Sequence[str] = ()) -> PreQuery:
    """A pre-query template given as text. When it ends with a known family's user prefix
    (ChatML, Llama 3, Gemma), that family's turns render later turns after what comes before
    the prefix (a BOS, a system turn) and its stops apply unless `stop` is given; else the
    prefix serves one turn only, and `stop` is needed."""
    for name in ("llama3", "gemma", "chatml"):
        known = FAMILIES[name]
        if prefix.endswith(known.user_prefix):
            return PreQuery("given", stop=tuple(stop) or known.stop, bos=prefix[: -len(known.user_prefix)],
                            user_turn=known.user_turn, assistant_turn=known.assistant_turn,
                            user_prefix=known.user_prefix)
    if not stop:
        raise TemplateError("a pre_query_template of no known family (ChatML, Llama 3, Gemma) needs its "
                            "end-of-turn strings in `end_of_turn`")
    return PreQuery("given", stop=tuple(stop), user_prefix=prefix)


def _raise(message: str) -> None:
    raise TemplateError(f"the chat template raised: {message}")


def _environment() -> ImmutableSandboxedEnvironment:
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    env.globals["raise_exception"] = _raise
    env.globals["strftime_now"] = lambda fmt: datetime.now(UTC).strftime(fmt)
    return env


def render(template: str, messages: list[Mapping[str, str]], tokens: Mapping[str, str]) -> str:
    """The template rendered as Hugging Face's `apply_chat_template` does (no generation prompt)."""
    from jinja2 import TemplateError as JinjaError

    try:
        return _environment().from_string(template).render(
            messages=messages, add_generation_prompt=False, bos_token=tokens.get("bos_token", ""),
            eos_token=tokens.get("eos_token", ""))
    except JinjaError as exc:
        raise TemplateError(f"the chat template cannot be rendered: {exc}") from None


def cut_before_sentinel(template: str, conversation: list[Mapping[str, str]], tokens: Mapping[str, str]) -> str:
    """The template rendered with the conversation and a sentinel user message, cut before it."""
    text = render(template, [*conversation, {"role": "user", "content": SENTINEL}], tokens)
    if SENTINEL not in text:
        raise TemplateError("the chat template does not show a user message's text")
    return text[: text.index(SENTINEL)]


def from_chat_template(template: str, bos_token: str = "", eos_token: str = "") -> PreQuery:
    """A template text's pre-query template; the end of a user turn (the text the template puts
    right after a user message, up to its line break) and the EOS token are the stops."""
    tokens = {"bos_token": bos_token or "", "eos_token": eos_token or ""}
    rendered = render(template, [{"role": "user", "content": SENTINEL}], tokens)
    if SENTINEL not in rendered:
        raise TemplateError("the chat template does not show a user message's text")
    after = rendered[rendered.index(SENTINEL) + len(SENTINEL):].strip()
    end = after.splitlines()[0].strip() if after else ""
    stops = tuple(dict.fromkeys(s for s in (end, eos_token) if s))
    if not stops:
        raise TemplateError("the chat template marks no end of a user turn and names no EOS token")
    head = rendered[: rendered.index(SENTINEL)]
    known = next((f for f in FAMILIES.values() if head.endswith(f.user_prefix)), None)
    if known is not None:  # a family's other markers end a query too (a model that opens the next turn)
        stops = tuple(dict.fromkeys([*stops, *known.stop]))
    return PreQuery("template", stop=stops, system=_default_system(template, tokens), template=template,
                    tokens=tokens)


def _default_system(template: str, tokens: Mapping[str, str]) -> str | None:
    """The default system turn's text, when rendering a lone user message adds one."""
    probe = "\u2063SYSTEM\u2063"
    with_system = render(template, [{"role": "system", "content": probe}, {"role": "user", "content": SENTINEL}],
                         tokens)
    alone = render(template, [{"role": "user", "content": SENTINEL}], tokens)
    head_with, head_alone = with_system[: with_system.find(SENTINEL)], alone[: alone.find(SENTINEL)]
    if probe not in head_with:
        return None
    before, after = head_with.split(probe, 1)
    if head_alone.startswith(before) and head_alone.endswith(after) and len(head_alone) > len(before) + len(after):
        return head_alone[len(before): len(head_alone) - len(after)]
    return None


def resolve(*, pre_query_template: str | None = None, template: str = "auto", end_of_turn: Sequence[str] = (),
            props: Mapping[str, Any] | None = None, model: str | None = None) -> PreQuery:
    """The pre-query template of the model that answers: a prefix given as it is, a named
    family, the server's template text (llama.cpp `/props`), or the family its model id
    names, in that order; a `TemplateError` when none says."""
    if pre_query_template:
        return given(pre_query_template, end_of_turn)
    if template != "auto":
        found = family(template)
        return replace(found, stop=tuple(end_of_turn)) if end_of_turn else found
    text = (props or {}).get("chat_template")
    if isinstance(text, str) and text.strip():
        derived = from_chat_template(text, str((props or {}).get("bos_token") or ""),
                                     str((props or {}).get("eos_token") or ""))
        return replace(derived, stop=tuple(end_of_turn)) if end_of_turn else derived
    by_name = from_model_name(model)
    if by_name is not None:
        return by_name
    raise TemplateError(f"cannot tell the chat template of model {model or '(unnamed)'}: the server shows none "
                        f"(llama.cpp's /props) and the name matches no known family; set `template` "
                        f"({', '.join(FAMILIES)}) or `pre_query_template`")
