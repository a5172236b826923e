"""Export formats that trainers ingest as they are.

* `alpaca` — a JSON list of `{"instruction", "input", "output"}` (Stanford Alpaca,
  LLaMA-Factory's alpaca format);
* `messages` — JSONL of `{"messages": [{"role": "user", ...}, {"role": "assistant", ...}]}`,
  TRL SFTTrainer's conversational format;
* `prompt-completion` — JSONL of `{"prompt", "completion"}`, TRL's prompt-completion
  format (loss on the completion only).

Rows may carry extra keys (e.g. `lineage`); they are kept in every format. Files are
written to a temporary name and renamed, so a reader never sees half a file.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from app.core.records import write_atomic

FORMATS = ("alpaca", "messages", "prompt-completion")
_CORE = ("id", "instruction", "input", "output")


def user_text(instruction: str, input_text: str) -> str:
    """The user's turn: the instruction, then the input after a blank line when there is one."""
    return f"{instruction}\n\n{input_text}" if input_text.strip() else instruction


def _extras(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if k not in _CORE}


def to_record(row: dict[str, Any], fmt: str) -> dict[str, Any]:
    if fmt == "alpaca":
        return {"instruction": row["instruction"], "input": row["input"], "output": row["output"], **_extras(row)}
    prompt = user_text(row["instruction"], row["input"])
    if fmt == "messages":
        return {
            "messages": [{"role": "user", "content": prompt}, {"role": "assistant", "content": row["output"]}],
            **_extras(row),
        }
    if fmt == "prompt-completion":
        return {"prompt": prompt, "completion": row["output"], **_extras(row)}
    raise ValueError(f"unknown export format {fmt!r}; use one of {', '.join(FORMATS)}")


def render(rows: Iterable[dict[str, Any]], fmt: str) -> str:
    records = [to_record(r, fmt) for r in rows]
    if fmt == "alpaca":
        return json.dumps(records, ensure_ascii=False, indent=2) + "\n"
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)


def write(rows: Iterable[dict[str, Any]], fmt: str, path: str | Path) -> int:
    """Write rows atomically (creating the folder); returns the number of rows."""
    rows = list(rows)
    write_atomic(path, render(rows, fmt), make_dirs=True)
    return len(rows)
