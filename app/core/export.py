"""Export formats that trainers ingest as they are, and the one atomic file writer.

* `alpaca` — a JSON list of `{"instruction", "input", "output"}` (Stanford Alpaca,
  LLaMA-Factory's alpaca format);
* `messages` — JSONL of `{"messages": [{"role": "user", ...}, {"role": "assistant", ...}]}`,
  TRL SFTTrainer's conversational format;
* `prompt-completion` — JSONL of `{"prompt", "completion"}`, TRL's prompt-completion
  format (loss on the completion only);
* `sharegpt` — JSONL of `{"conversations": [{"from": "human", ...}, {"from": "gpt", ...}]}`
  (plus `system` when a row has one), LLaMA-Factory's sharegpt format.

A multi-turn row (`app.core.conversation`: the first exchange in the columns, the later
turns in `turns`) keeps every turn in `messages`, `sharegpt` and Parquet's `messages`;
`prompt-completion` gives the conversation up to the last answer as a message list and the
last answer as the completion (TRL's conversational prompt-completion: only that answer
carries loss); `alpaca` has no place for turns and takes the first exchange (the card says so).

`to_record` is the single definition of every row shape, the Parquet columns
(`PARQUET_COLUMNS`, written by `app.core.handoff.formats`; the judge's `quality`,
`complexity` and `judge` as columns of their own) included. Rows may carry extra
keys (e.g. `lineage`); the JSON formats keep them as they are.

Files are written to a temporary name in the target's folder and renamed (`records.atomic_file`),
so a reader never sees half a file; rows are written one at a time, so memory does not
grow with the file.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from app.core import conversation
from app.core.records import atomic_file

FORMATS = ("alpaca", "messages", "prompt-completion", "sharegpt")  # one file each, JSON text
SHAPES = (*FORMATS, "parquet")  # every row shape `to_record` knows
_CORE = ("id", "instruction", "input", "output", "turns")  # `turns`: a conversation's later turns
# the provenance keys a row may carry; Parquet stores them as columns (lineage and scores as JSON text)
PROVENANCE = ("method", "job_id", "lineage", "scores")
# the LLM judge's scores (`app.core.scoring`), also typed columns of their own in Parquet (null when unscored)
JUDGE_COLUMNS = ("quality", "complexity", "judge")
PARQUET_COLUMNS = ("id", "instruction", "input", "output", "system", "messages", *PROVENANCE, *JUDGE_COLUMNS, "extra")


user_text = conversation.user_text
SHAREGPT_FROM = {"system": "system", "user": "human", "assistant": "gpt"}


def _extras(row: dict[str, Any], *skip: str) -> dict[str, Any]:
    return {k: v for k, v in row.items() if k not in _CORE and k not in skip}


def _system(row: dict[str, Any]) -> str:
    value = row.get("system")
    return value if isinstance(value, str) and value.strip() else ""


def to_record(row: dict[str, Any], fmt: str) -> dict[str, Any]:
    """One row in the shape of format `fmt` (a name of `SHAPES`)."""
    if fmt == "alpaca":
        return {"instruction": row["instruction"], "input": row["input"], "output": row["output"], **_extras(row)}
    prompt = user_text(row["instruction"], row["input"])
    system = _system(row)
    if fmt == "messages":
        return {"messages": conversation.messages(row, system), **_extras(row, "system")}
    if fmt == "prompt-completion":
        if conversation.turns_of(row):
            messages = conversation.messages(row)
            return {"prompt": messages[:-1], "completion": messages[-1:], **_extras(row)}
        return {"prompt": prompt, "completion": row["output"], **_extras(row)}
    if fmt == "sharegpt":
        record: dict[str, Any] = {"conversations": [{"from": SHAREGPT_FROM[m["role"]], "value": m["content"]}
                                                    for m in conversation.messages(row)]}
        if system:
            record["system"] = system
        return {**record, **_extras(row, "system")}
    if fmt == "parquet":
        extra = _extras(row, "system", *PROVENANCE)
        return {
            "id": row.get("id"), "instruction": row["instruction"], "input": row["input"], "output": row["output"],
            "system": system or None,
            "messages": to_record(row, "messages")["messages"],
            "method": row.get("method"), "job_id": row.get("job_id"),
            "lineage": _json_or_none(row.get("lineage")), "scores": _json_or_none(row.get("scores")),
            **_judge_columns(row.get("scores")),
            "extra": _json_or_none(extra or None),
        }
    raise ValueError(f"unknown export format {fmt!r}; use one of {', '.join(SHAPES)}")


def _judge_columns(scores: Any) -> dict[str, Any]:
    """quality, complexity (numbers) and judge (a name) from a row's scores; None when absent."""
    scores = scores if isinstance(scores, dict) else {}

    def number(value: Any) -> float | None:
        return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None

    judge = scores.get("judge")
    return {"quality": number(scores.get("quality")), "complexity": number(scores.get("complexity")),
            "judge": judge if isinstance(judge, str) else None}


def _json_or_none(value: Any) -> str | None:
    return None if value is None else json.dumps(value, ensure_ascii=False, sort_keys=True)


def record_text(record: dict[str, Any]) -> str:
    """One JSONL line (without its newline)."""
    return json.dumps(record, ensure_ascii=False)


def alpaca_item_text(record: dict[str, Any]) -> str:
    """One item of the alpaca JSON list, indented as `json.dumps(list, indent=2)` writes it,
    so a streamed file is byte for byte the list dumped whole."""
    return "\n".join("  " + line for line in json.dumps(record, ensure_ascii=False, indent=2).splitlines())


def render(rows: Iterable[dict[str, Any]], fmt: str) -> str:
    return "".join(_chunks(rows, fmt))


def _chunks(rows: Iterable[dict[str, Any]], fmt: str) -> Iterator[str]:
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r}; use one of {', '.join(FORMATS)}")
    if fmt != "alpaca":
        for row in rows:
            yield record_text(to_record(row, fmt)) + "\n"
        return
    first = True
    for row in rows:
        yield ("[\n" if first else ",\n") + alpaca_item_text(to_record(row, fmt))
        first = False
    yield "[]\n" if first else "\n]\n"


def write(rows: Iterable[dict[str, Any]], fmt: str, path: str | Path) -> int:
    """Write rows atomically, one at a time; returns the number of rows."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r}; use one of {', '.join(FORMATS)}")
    count = 0

    def counted() -> Iterator[dict[str, Any]]:
        nonlocal count
        for row in rows:
            count += 1
            yield row

    with atomic_file(path) as fh:
        for chunk in _chunks(counted(), fmt):
            fh.write(chunk)
    return count
