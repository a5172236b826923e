"""Multi-turn conversations as rows: the first exchange in the row's columns, the rest in `turns`.

A row is still `instruction`, `input`, `output` (the first user turn and the first answer),
so every single-turn reader, filter and format keeps working unchanged; a conversation adds
`turns`, its later messages in order: `[{"role": "user", "content": ...}, {"role":
"assistant", "content": ...}, ...]`, alternating, starting with the user and ending with
the assistant. A single-turn row has no `turns` (or an empty list), and its stored and
hashed content is what it always was.

`messages(row)` is the whole conversation as chat messages, the one definition the export
formats, the trainer's data reader and the preflight check share.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from app.core.errors import InvalidInput

ROLES = ("user", "assistant")


class TurnsError(InvalidInput):
    """`turns` is not a list of alternating user and assistant messages; names the item at fault."""


def check_turns(turns: Any, where: str = "turns") -> list[dict[str, str]]:
    """The turns as a clean list (only `role` and `content`); raises `TurnsError` naming the item."""
    if turns is None:
        return []
    if not isinstance(turns, list):
        raise TurnsError(f"{where}: must be a list of messages, got {type(turns).__name__}")
    if len(turns) % 2:
        raise TurnsError(f"{where}: {len(turns)} messages; the later turns come in pairs (user, then assistant)")
    out = []
    for i, turn in enumerate(turns):
        at = f"{where}[{i}]"
        if not isinstance(turn, Mapping):
            raise TurnsError(f"{at}: expected an object with 'role' and 'content'")
        role, content = turn.get("role"), turn.get("content")
        expected = ROLES[i % 2]
        if role != expected:
            raise TurnsError(f"{at}: role must be {expected!r} (turns alternate, user first), got {role!r}")
        if not isinstance(content, str) or not content.strip():
            raise TurnsError(f"{at}: 'content' must be non-empty text")
        if "\x00" in content:
            raise TurnsError(f"{at}: 'content' holds a NUL character")
        out.append({"role": role, "content": content})
    return out


def turns_of(row: Mapping[str, Any]) -> list[dict[str, str]]:
    """The row's later turns as stored (an empty list for a single-turn row)."""
    turns = row.get("turns")
    return list(turns) if isinstance(turns, list) else []


def user_text(instruction: str, input_text: str) -> str:
    """The first user turn: the instruction, then the input after a blank line when there is one."""
    return f"{instruction}\n\n{input_text}" if input_text.strip() else instruction


def messages(row: Mapping[str, Any], system: str = "") -> list[dict[str, str]]:
    """The whole conversation as chat messages: system (when given), the first exchange, the later turns."""
    out = [{"role": "system", "content": system}] if system else []
    out += [{"role": "user", "content": user_text(row["instruction"], row.get("input") or "")},
            {"role": "assistant", "content": row["output"]}]
    return out + [{"role": t["role"], "content": t["content"]} for t in turns_of(row)]


def exchanges(row: Mapping[str, Any]) -> int:
    """How many user-assistant exchanges the row holds (1 for a single-turn row)."""
    return 1 + len(turns_of(row)) // 2
