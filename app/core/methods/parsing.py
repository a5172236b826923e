"""Turning model text into instructions, answers and instances.

The model continues few-shot lists, so its text is parsed by the same shapes the prompts
show it ("9. ...", "Example 2 / Input: / Output:", "Class label: ..."). These functions
are pure: what was parsed and what was dropped is decided by the filters, not here.
"""

from __future__ import annotations

import re

from app.core.methods.candidates import InstanceCandidate

_ITEM_SPLIT = re.compile(r"(?:^|\n)[ \t]*\d+[ \t]*\.[ \t]*")
_SPACES = re.compile(r"\s+")


def numbered_list(items: list[str]) -> str:
    """`1. a\\n2. b\\n...` and the next number, ready for the model to continue."""
    lines = [f"{i}. {_SPACES.sub(' ', text).strip()}" for i, text in enumerate(items, start=1)]
    lines.append(f"{len(items) + 1}.")
    return "\n".join(lines)


def parse_instruction_list(continuation: str, first_number: int) -> list[str]:
    """The instructions of a list continuation that started right after `first_number.`.

    Items are split on their numbers; whitespace inside an item is collapsed (as the
    reference code does); empty items are dropped.
    """
    text = f"{first_number}. " + continuation.lstrip(" \t")
    items = (_SPACES.sub(" ", part).strip() for part in _ITEM_SPLIT.split(text))
    return [item for item in items if item]


_NUMBERED_LINE = re.compile(r"^\s*(?:\d+\s*[.)]|[-*\u2022])\s+(.*\S)\s*$")


def parse_numbered_reply(reply: str) -> list[str]:
    """The items of a chat model's list reply ("9. ...", "10) ...", "- ..." lines): its own
    turn, not a continuation, so items are read line by line and anything around the list
    (an intro, a closing remark) is left out."""
    items = []
    for line in reply.splitlines():
        match = _NUMBERED_LINE.match(line)
        if match:
            items.append(_SPACES.sub(" ", match.group(1)).strip().strip("*").strip())
    return [item for item in items if item]


def parse_yes_no(text: str) -> bool | None:
    """True for a reply starting "Yes", False for "No", None for anything else."""
    match = re.match(r"\s*([A-Za-z]+)", text)
    if not match:
        return None
    word = match.group(1).lower()
    return True if word == "yes" else False if word == "no" else None


_EXAMPLE_SPLIT = re.compile(r"Example\s?\d*\s*\.?:?")
_OUTPUT = re.compile(r"Output\s*\d*\s*:")
_INPUT = re.compile(r"Input\s*\d*\s*:")
_NO_INPUT = re.compile(r"(none|no input|n/a|<noinput>)\.?", re.IGNORECASE)


def _input_output(text: str) -> tuple[str, str]:
    if _OUTPUT.search(text):
        inp, out = _OUTPUT.split(text, maxsplit=1)
    else:
        inp, out = "", text
    out = _INPUT.split(out, maxsplit=1)[0]  # a second pair run into the output
    inp = _INPUT.sub("", inp.strip(), count=1) if _INPUT.match(inp.strip()) else inp
    inp = inp.strip()
    if _NO_INPUT.fullmatch(inp):  # the prompt asks for "Input: none" when there is none
        inp = ""
    return inp, out.strip()


def parse_input_first(text: str) -> list[InstanceCandidate]:
    """Instances of a non-classification task: "Example N / Input: / Output:" blocks,
    or a single "Output:" for a task without input."""
    text = text.strip()
    if _EXAMPLE_SPLIT.search(text):
        blocks = [b.strip() for b in _EXAMPLE_SPLIT.split(text) if b.strip()]
    elif _OUTPUT.search(text):
        blocks = [text]
    else:
        return []
    return [InstanceCandidate(*_input_output(block)) for block in blocks]


def parse_output_first(text: str) -> list[InstanceCandidate]:
    """Instances of a classification task: "Class label: L" then the input on the next lines."""
    if "Class label:" not in text:
        return []
    out = []
    for block in text.split("Class label:")[1:]:
        label, _, rest = block.strip().partition("\n")
        out.append(InstanceCandidate(input=_strip_field_name(rest.strip()), output=label.strip()))
    return out


def _strip_field_name(text: str) -> str:
    """Drop a leading "Input:"; task-specific names ("Sentence: ...") stay, as in the paper."""
    return _INPUT.sub("", text, count=1).strip() if _INPUT.match(text) else text
