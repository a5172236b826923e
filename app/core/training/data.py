"""Training data in: Sprout's export formats, read into one shape (a list of chat messages).

Formats (detected per row, so a file in any of them needs no flag):
- alpaca: `{"instruction", "input", "output"}` (a JSON list, or JSONL); extra keys such as
  `lineage` are ignored, `system` becomes a system message; a Sprout row's `turns` (a
  conversation's later turns, `app.core.conversation`) follow the first answer;
- messages: `{"messages": [{"role", "content"}, ...]}` (JSONL);
- prompt-completion: `{"prompt", "completion"}` (JSONL), plain strings or message lists;
- sharegpt: `{"conversations": [{"from": "human"|"gpt"|"system", "value"}, ...], "system"?}`
  (JSONL, LLaMA-Factory's format).

Everything becomes a conversation so that one code path (the model's chat template, the
assistant-only loss mask) serves all three. The whole file is checked before training
starts, and errors name their lines: a bad row found an hour into a run is an hour lost.

The held-out split is by hash of (seed, row), not by position: it does not depend on the
order of the rows, and a row repeated in the data never sits on both sides.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from app.core import conversation as turns_model
from app.core import records
from app.core.export import user_text
from app.core.records import RecordError
from app.core.training.errors import TrainDataError

Message = dict[str, str]
Conversation = list[Message]

ROLES = ("system", "user", "assistant")
MAX_ERRORS_SHOWN = 5


def user_prompt(instruction: str, input_text: str = "") -> str:
    """The user turn of an instruction row, the same text as the `messages` and
    `prompt-completion` exports (so a dataset trains alike whichever format it was
    exported in); Alpaca's `<noinput>` is no input."""
    return user_text(instruction, "" if input_text.strip() == "<noinput>" else input_text)


SHAREGPT_ROLES = {"human": "user", "gpt": "assistant", "system": "system"}


def row_format(row: Mapping[str, Any]) -> str:
    """'messages', 'prompt-completion', 'sharegpt' or 'alpaca'; raises for anything else."""
    if "messages" in row:
        return "messages"
    if "conversations" in row:
        return "sharegpt"
    if "prompt" in row and "completion" in row:
        return "prompt-completion"
    if "instruction" in row and "output" in row:
        return "alpaca"
    keys = ", ".join(sorted(map(str, row))) or "none"
    raise ValueError(
        "not a training row: expected 'messages', 'conversations', 'prompt' and 'completion', or 'instruction' "
        "and 'output' "
        f"(keys: {keys})"
    )


def row_to_conversation(row: Any) -> Conversation:
    """One row of any export format as chat messages ending with the assistant's answer."""
    if not isinstance(row, Mapping):
        raise ValueError(f"expected a JSON object, got {type(row).__name__}")
    fmt = row_format(row)
    if fmt == "alpaca":
        instruction = _string(row, "instruction")
        if not instruction.strip():
            raise ValueError("field 'instruction' is empty")
        input_text = _string(row, "input", required=False)
        messages: Conversation = []
        system = _string(row, "system", required=False)
        if system.strip():
            messages.append({"role": "system", "content": system})
        messages.append({"role": "user", "content": user_prompt(instruction, input_text)})
        messages.append({"role": "assistant", "content": _string(row, "output")})
        messages += turns_model.check_turns(row.get("turns"))
    elif fmt == "prompt-completion":
        prompt, completion = row["prompt"], row["completion"]
        if isinstance(prompt, str) and isinstance(completion, str):
            messages = [{"role": "user", "content": prompt}, {"role": "assistant", "content": completion}]
        elif isinstance(prompt, list) and isinstance(completion, list):
            messages = _messages(prompt, "prompt") + _messages(completion, "completion")
        else:
            raise ValueError("fields 'prompt' and 'completion' must both be strings or both be message lists")
    elif fmt == "sharegpt":
        messages = _sharegpt(row)
    else:
        if not isinstance(row["messages"], list):
            raise ValueError("field 'messages' must be a list")
        messages = _messages(row["messages"], "messages")
    _check_conversation(messages)
    return messages


def rows_to_conversations(rows: Iterable[Any]) -> list[Conversation]:
    """Rows already in memory (a Sprout job's curated data, or a parsed file); errors name the row."""
    conversations, errors = [], []
    for i, row in enumerate(rows):
        try:
            conversations.append(row_to_conversation(row))
        except ValueError as exc:
            errors.append(f"row {i}: {exc}")
    _raise_errors(errors, "rows")
    if not conversations:
        raise TrainDataError("no training rows")
    return conversations


def read_export(path: str | Path) -> tuple[str, list[Conversation]]:
    """Read an export file; returns (format, conversations). Errors name the file and the lines."""
    p = Path(path)
    try:
        text = records.read_text(p)
    except RecordError as exc:
        raise TrainDataError(str(exc)) from None
    items = _json_list_items(text, p) if text.lstrip().startswith("[") else _jsonl_items(text, p)
    conversations, formats, errors = [], [], []
    for item in items:
        row = item.value
        try:
            if isinstance(row, Mapping):
                formats.append(row_format(row))
            conversations.append(row_to_conversation(row))
        except ValueError as exc:
            errors.append(f"{item.where}: {exc}")
    _raise_errors(errors, str(p))
    if not conversations:
        raise TrainDataError(f"{p}: the file holds no training rows")
    kinds = sorted(set(formats), key=formats.index)
    return "+".join(kinds), conversations


def load_conversations(rows_or_path: str | Path | Sequence[Any]) -> list[Conversation]:
    """A path (read as an export file) or a list of rows (any export format)."""
    if isinstance(rows_or_path, (str, Path)):
        return read_export(rows_or_path)[1]
    return rows_to_conversations(rows_or_path)


def split_held_out(
    conversations: Sequence[Conversation], eval_fraction: float, seed: int
) -> tuple[list[Conversation], list[Conversation]]:
    """(train, held_out): the rows with the smallest hash of (seed, row) are held out.

    At least one row is held out when the fraction is positive and there are two rows or more;
    identical rows hash alike, so a duplicated row never sits on both sides.
    """
    n = len(conversations)
    if eval_fraction <= 0 or n < 2:
        return list(conversations), []
    keys = [_row_hash(c, seed) for c in conversations]
    distinct = sorted(set(keys))
    n_held = min(max(1, math.ceil(len(distinct) * eval_fraction)), len(distinct) - 1)
    held_keys = set(distinct[:n_held])
    train = [c for c, k in zip(conversations, keys) if k not in held_keys]
    held = [c for c, k in zip(conversations, keys) if k in held_keys]
    return train, held


def _row_hash(conversation: Conversation, seed: int) -> str:
    blob = json.dumps([seed, conversation], ensure_ascii=False, sort_keys=True)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def _string(row: Mapping[str, Any], key: str, required: bool = True) -> str:
    return records.string_field(dict(row), key, required)


def _messages(raw: list[Any], field: str) -> Conversation:
    out = []
    for i, msg in enumerate(raw):
        where = f"{field}[{i}]"
        if not isinstance(msg, Mapping):
            raise ValueError(f"{where}: expected an object with 'role' and 'content'")
        role, content = msg.get("role"), msg.get("content")
        if role not in ROLES:
            raise ValueError(f"{where}: role must be one of {', '.join(ROLES)}, got {role!r}")
        if not isinstance(content, str):
            raise ValueError(f"{where}: field 'content' must be a string")
        out.append({"role": role, "content": content})
    return out


def _sharegpt(row: Mapping[str, Any]) -> Conversation:
    turns = row["conversations"]
    if not isinstance(turns, list):
        raise ValueError("field 'conversations' must be a list")
    messages: Conversation = []
    system = _string(row, "system", required=False)
    if system.strip():
        messages.append({"role": "system", "content": system})
    for i, turn in enumerate(turns):
        where = f"conversations[{i}]"
        if not isinstance(turn, Mapping):
            raise ValueError(f"{where}: expected an object with 'from' and 'value'")
        speaker, value = turn.get("from"), turn.get("value")
        role = SHAREGPT_ROLES.get(speaker) if isinstance(speaker, str) else None
        if role is None:
            raise ValueError(f"{where}: 'from' must be one of {', '.join(SHAREGPT_ROLES)}, got {turn.get('from')!r}")
        if not isinstance(value, str):
            raise ValueError(f"{where}: field 'value' must be a string")
        messages.append({"role": role, "content": value})
    return messages


def _check_conversation(messages: Conversation) -> None:
    if not messages:
        raise ValueError("no messages")
    if any(m["role"] == "system" for m in messages[1:]):
        raise ValueError("a system message may only come first")
    if messages[-1]["role"] != "assistant":
        raise ValueError("the last message must be the assistant's answer")
    if not any(m["role"] == "user" for m in messages):
        raise ValueError("no user message")
    if not messages[-1]["content"].strip():
        raise ValueError("the assistant's answer is empty")


def _raise_errors(errors: list[str], where: str) -> None:
    if not errors:
        return
    shown = "; ".join(errors[:MAX_ERRORS_SHOWN])
    more = f" (and {len(errors) - MAX_ERRORS_SHOWN} more)" if len(errors) > MAX_ERRORS_SHOWN else ""
    noun = "bad row" if len(errors) == 1 else "bad rows"
    raise TrainDataError(f"{where}: {len(errors)} {noun}: {shown}{more}")


def _jsonl_items(text: str, path: Path) -> list[records.Item]:
    errors: list[str] = []
    items = records.jsonl_items(text, errors)
    _raise_errors(errors, str(path))
    return items


def _json_list_items(text: str, path: Path) -> list[records.Item]:
    """Items of a JSON list with the line each starts on."""
    try:
        return records.json_list_items(text)
    except RecordError as exc:
        raise TrainDataError(f"{path}: {exc}") from None
