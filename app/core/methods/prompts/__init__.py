"""Prompt templates, one text file per prompt, rendered with `{{name}}` placeholders.

Templates are files so that a reviewer reads a prompt as the model sees it, and so that
changing one shows up as a one-file diff.

Prefix reuse: in every prompt whose demonstrations are fixed (classification, instances,
Evol-Instruct's operations, judge and response) the fixed part comes first and what varies
per request (the instruction) last, so the first `len(fixed_prefix(name))` characters are
byte-identical across a job's requests and a server with prefix caching (llama.cpp's
prompt cache, vLLM's `--enable-prefix-caching`) computes them once. Self-Instruct's
generation prompt keeps the paper's shape: its in-context tasks vary with every request.

Chat prompts (`chat_*.txt`) are the user turns of the same steps for an instruct model
spoken to through the chat API (`app.core.llm.dialects`): the request in plain words, no
few-shot continuation, after the system turn `chat_system.txt` ("You are a helpful
assistant.", as WizardLM's Evol-Instruct code sends). `messages` builds the two turns.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

PROMPTS_DIR = Path(__file__).resolve().parent
_PLACEHOLDER = re.compile(r"\{\{(\w+)\}\}")


@lru_cache
def load(name: str) -> str:
    """The text of one template (`name` without its `.txt`)."""
    return (PROMPTS_DIR / f"{name}.txt").read_text(encoding="utf-8")


def render(name: str, **values: str) -> str:
    """Fill `{{key}}` placeholders; a missing value is a programming error."""
    template = load(name)

    def sub(match: re.Match[str]) -> str:
        return values[match.group(1)]

    return _PLACEHOLDER.sub(sub, template)


def messages(name: str, **values: str) -> list[dict[str, str]]:
    """The chat turns of one step: the system turn, then the rendered user turn."""
    return [{"role": "system", "content": load("chat_system").strip()},
            {"role": "user", "content": render(name, **values).strip()}]


def fixed_prefix(name: str) -> str:
    """The part of a template before its first placeholder: the same in every rendering."""
    template = load(name)
    match = _PLACEHOLDER.search(template)
    return template[: match.start()] if match else template


def gemma_chat_template() -> str:
    """Gemma's chat template; the GGUF of the embedded model ships none.

    Assistant turns sit in `{% generation %}` blocks so the trainer can mask the loss to
    the response tokens.
    """
    return (PROMPTS_DIR / "gemma_chat_template.jinja").read_text(encoding="utf-8")
