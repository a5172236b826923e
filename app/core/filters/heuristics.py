"""The papers' heuristic rules for instructions and instances, each returning a rule name.

A rule name is what a rejected candidate stores as its reason; the names are listed in
`INSTRUCTION_RULES` and `INSTANCE_RULES` so the API and the docs can enumerate them.
"""

from __future__ import annotations

import re
import string
from collections.abc import Sequence
from functools import lru_cache

from app.core.methods.candidates import InstanceCandidate

INSTRUCTION_RULES = {
    "truncated_response": "the model's response was cut by the length limit; the paper drops it whole",
    "empty": "no text",
    "too_short": "at most 3 words (fewer than min_words)",
    "too_long": "more than max_words words",
    "blacklisted_word": "mentions something a text model cannot do (image, file, plot, ...)",
    "write_a_program": "starts with 'Write a program'",
    "starts_with_punctuation": "starts with punctuation",
    "starts_with_non_ascii": "starts with a non-ASCII character",
    "too_similar": "ROUGE-L F against an instruction in the pool above the threshold",
    "no_valid_instances": "every generated instance was rejected",
    "conflicting_instances": "two instances share an input but differ in output",
    "near_duplicate": "every instance near-duplicates an example already in the dataset (MinHash)",
    "llm_error": "the model server failed on this task's classification or instances",
    "unparseable": "the instances were asked for as JSON (chat API, structured outputs) and the reply does not "
    "follow the schema; its text is kept in the row's detail",
    "contaminated": "reproduces a benchmark item: shared word 8-grams cover more than half of it, or an exact match "
    "(decontaminate_against)",
    "over_target": "passed the filters after the job had reached its target; not part of the dataset",
}

INSTANCE_RULES = {
    "truncated": "the last instance of a response cut by the length limit",
    "empty_output": "the output is empty",
    "input_equals_output": "the input and the output are the same",
    "ends_with_colon": "the input or output ends with ':' (an unfinished generation)",
    "duplicate": "the same input and output as an earlier instance",
    "over_limit": "beyond max_instances for the task",
    "conflicting": "the task had two instances with one input and different outputs",
    "near_duplicate": "near-duplicates an example already in the dataset (MinHash)",
    "contaminated": "the instance reproduces a benchmark item (decontaminate_against)",
}


@lru_cache(maxsize=256)
def _word_pattern(word: str) -> re.Pattern[str]:
    return re.compile(rf"\b{re.escape(word)}\b", re.IGNORECASE)


def instruction_rule(text: str, min_words: int, max_words: int, blacklist: Sequence[str]) -> str | None:
    """The first rule an instruction breaks, or None if it passes (novelty is separate)."""
    if not text:
        return "empty"
    n_words = len(text.split())
    if n_words < min_words:
        return "too_short"
    if n_words > max_words:
        return "too_long"
    if any(_word_pattern(w).search(text) for w in blacklist):
        return "blacklisted_word"
    if text.lower().startswith("write a program"):
        return "write_a_program"
    if text[0] in string.punctuation:
        return "starts_with_punctuation"
    if not text[0].isascii():
        return "starts_with_non_ascii"
    return None



def filter_instances(instances: list[InstanceCandidate], truncated: bool, max_instances: int) -> str | None:
    """Apply the instance rules in place (setting each `rule`); return a task-level rule.

    Order follows the reference pipeline: drop the last instance of a truncated response,
    drop invalid ones, then refuse the whole task if two instances share a non-empty
    input with different outputs, then drop exact duplicates and keep at most
    `max_instances`. Returns "conflicting_instances" or "no_valid_instances" when the
    task ends with no usable instance, else None.
    """
    if truncated and instances:
        instances[-1].rule = "truncated"
    for inst in instances:
        if inst.rule:
            continue
        i, o = inst.input.strip(), inst.output.strip()
        if not o:
            inst.rule = "empty_output"
        elif i == o:
            inst.rule = "input_equals_output"
        elif i.endswith(":") or o.endswith(":"):
            inst.rule = "ends_with_colon"
    alive = [x for x in instances if x.accepted]
    outputs_by_input: dict[str, str] = {}
    for inst in alive:
        if inst.input and outputs_by_input.setdefault(inst.input, inst.output) != inst.output:
            for x in alive:
                x.rule = "conflicting"
            return "conflicting_instances"
    seen: set[tuple[str, str]] = set()
    kept = 0
    for inst in alive:
        key = (inst.input, inst.output)
        if key in seen:
            inst.rule = "duplicate"
        elif kept >= max_instances:
            inst.rule = "over_limit"
        else:
            seen.add(key)
            kept += 1
    return None if kept else "no_valid_instances"
