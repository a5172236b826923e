"""Structured replies: the JSON schemas sent as `response_format` on the chat API, and
their strict parsers.

Why: an instruct model asked for "Example 1 / Input: / Output:" text writes it in a dozen
shapes; a server that constrains decoding to a JSON schema (llama.cpp's grammar, vLLM's
guided decoding, OpenAI's structured outputs) returns one shape that parses or does not.
A reply that does not parse is rejected with the rule `unparseable` and its text is kept
(`detail["reply"]`), never guessed at.
"""

from __future__ import annotations

import json
import re
from typing import Any

from app.core.methods.candidates import InstanceCandidate

UNPARSEABLE = "unparseable"
REPLY_CHARS = 2000  # of a reply kept with its `unparseable` rejection
_FENCE = re.compile(r"^\s*```(?:json)?\s*(.*?)\s*```\s*$", re.DOTALL)


def instances_schema(output_first: bool, max_items: int) -> dict[str, Any]:
    """{"instances": [{input, output}, ...]}; a classification task's output (its label)
    comes first, so the model picks the label before it writes the input (output-first)."""
    order = ("output", "input") if output_first else ("input", "output")
    item = {"type": "object", "properties": {k: {"type": "string"} for k in order},
            "required": list(order), "additionalProperties": False}
    return {"type": "object",
            "properties": {"instances": {"type": "array", "items": item, "minItems": 1, "maxItems": max_items}},
            "required": ["instances"], "additionalProperties": False}


def score_schema(scale: range = range(1, 7)) -> dict[str, Any]:
    """{"score": one integer of the scale}."""
    return {"type": "object", "properties": {"score": {"type": "integer", "enum": list(scale)}},
            "required": ["score"], "additionalProperties": False}


def _load(text: str) -> Any:
    match = _FENCE.match(text or "")
    try:
        return json.loads(match.group(1) if match else text)
    except (TypeError, ValueError):
        return None


def parse_instances(text: str) -> list[InstanceCandidate] | None:
    """The instances of a JSON reply, or None when it does not follow the schema."""
    data = _load(text)
    items = data.get("instances") if isinstance(data, dict) else None
    if not isinstance(items, list) or not items:
        return None
    out = []
    for item in items:
        if not (isinstance(item, dict) and isinstance(item.get("input"), str) and isinstance(item.get("output"), str)):
            return None
        inp = item["input"].strip()
        out.append(InstanceCandidate("" if inp.lower() in ("none", "n/a", "<noinput>") else inp, item["output"].strip()))
    return out


def parse_score(text: str, scale: range = range(1, 7)) -> int | None:
    """The score of a JSON reply, or None when it does not follow the schema."""
    data = _load(text)
    score = data.get("score") if isinstance(data, dict) else None
    if isinstance(score, bool) or not isinstance(score, int) or score not in scale:
        return None
    return score


def task_schema() -> dict[str, Any]:
    """{"task": text}: one task written by a planned method (a persona's, a topic's)."""
    return {"type": "object", "properties": {"task": {"type": "string", "minLength": 1}},
            "required": ["task"], "additionalProperties": False}


def parse_task(text: str) -> str | None:
    """The task of a JSON reply, or None when it does not follow the schema."""
    data = _load(text)
    task = data.get("task") if isinstance(data, dict) else None
    return task.strip() if isinstance(task, str) and task.strip() else None


SUBTOPIC_CHARS = 80  # a subtopic is a few words; the bound keeps a rambling model from using up max_tokens


def subtopics_schema(breadth: int) -> dict[str, Any]:
    """{"subtopics": [name, ...]}: the children of one node of a topic tree, exactly `breadth` of them.

    A lower bound of one let a small chat model stop at one subtopic per node, so a tree grew
    into a single chain; the schema's grammar now asks for every child the tree wants."""
    return {"type": "object",
            "properties": {"subtopics": {"type": "array", "items": {"type": "string", "minLength": 1,
                                                                  "maxLength": SUBTOPIC_CHARS},
                                         "minItems": breadth, "maxItems": breadth}},
            "required": ["subtopics"], "additionalProperties": False}


def parse_subtopics(text: str) -> list[str] | None:
    """The subtopics of a JSON reply, or None when it does not follow the schema."""
    data = _load(text)
    items = data.get("subtopics") if isinstance(data, dict) else None
    if not isinstance(items, list) or not all(isinstance(t, str) for t in items):
        return None
    return [t for t in items if t.strip()]
