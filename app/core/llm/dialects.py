"""Which API a model server is spoken to through: `completions` or `chat`.

Why two: a base model continues text, so Sprout's few-shot prompts go to
`/v1/completions` as they are (`completions`, the prompts of the Self-Instruct paper). An
instruct model is trained on its chat template, and many hosted endpoints accept nothing
but `/v1/chat/completions` for it (they answer `/v1/completions` with "This is a chat
model and not supported in the v1/completions endpoint"), so its prompts go as messages
(`chat`, the prompt files named `chat_*`).

`auto` (the default) decides once per client, before its first request: a llama.cpp
server says in `/props` whether it has a chat template (`chat`); Sprout's own embedded base
model is served with one (for the judge's and the trainer's chat format) but is a base
model (`completions`); a server with no `/props` (vLLM, hosted APIs) is spoken to through
`completions` until it answers with the chat-model error, and then through `chat` for the
rest of the client's life. A forced `completions` fails at once on that error, with one
message naming the endpoint.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Literal

Dialect = Literal["completions", "chat"]
DIALECTS = ("auto", "completions", "chat")

# the models Sprout serves itself: known without asking (`embedded.EMBEDDED_MODELS` names them)
KNOWN_MODELS: dict[str, Dialect] = {"gemma-3-270m": "completions", "smollm2-135m-instruct": "chat"}

# OpenAI's wording, and the shorter forms other OpenAI-compatible servers use
_CHAT_MODEL_ERROR = re.compile(
    r"(is a chat model and (is )?not supported in the v1/completions endpoint"
    r"|only supports? (the )?(v1/)?chat[/ ]completions"
    r"|use (the )?(v1/)?chat/completions (endpoint )?instead)",
    re.IGNORECASE,
)


def check_dialect(value: str) -> str:
    """`value` when it is a dialect; else a ValueError naming the choices."""
    if value not in DIALECTS:
        raise ValueError(f"dialect must be one of {', '.join(DIALECTS)}, not {value!r}")
    return value


def is_chat_model_error(message: str) -> bool:
    """Whether a server's error says the model is served through the chat API only."""
    return bool(_CHAT_MODEL_ERROR.search(message or ""))


def from_props(props: Any) -> Dialect | None:
    """What a llama.cpp server's `/props` says: a model Sprout knows by its alias, else
    `chat` when the server has a chat template; None when the answer says nothing."""
    if not isinstance(props, dict):
        return None
    alias = props.get("model_alias")
    if isinstance(alias, str) and alias in KNOWN_MODELS:
        return KNOWN_MODELS[alias]
    template = props.get("chat_template")
    if isinstance(template, str) and template.strip():
        return "chat"
    return None


@dataclass
class Request:
    """One step's request in the dialect it was built for: a prompt (`completions`) or
    messages (`chat`), and the sampling fields. `schema`: a JSON schema the reply must
    follow (sent as `response_format` on the chat API), or None."""

    dialect: Dialect
    prompt: str | None = None
    messages: list[dict[str, str]] | None = None
    params: dict[str, Any] = field(default_factory=dict)
    schema: dict[str, Any] | None = None
    schema_name: str = "reply"

    def chat_params(self) -> dict[str, Any]:
        out = dict(self.params)
        if self.schema is not None:
            out["response_format"] = {"type": "json_schema",
                                      "json_schema": {"name": self.schema_name, "schema": self.schema, "strict": True}}
        return out
