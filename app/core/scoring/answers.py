"""Reading a judge's answer: the strict integer parse and the expected score from
token log-probabilities. Pure functions, tested on real and garbled answers.

Why strict: a score that was guessed out of a rambling answer ("between 3 and 4", "four")
is worse than none, because it would be filtered on as if the judge had said it. An
answer that is not plainly one score from 1 to 6 is stored as unparseable with its text.

Why the expected score (Deita, Liu et al., 2023): a judge that hesitates between 3 and 5
says so in its probabilities, and the weighted mean over the score tokens separates
examples that a single sampled digit ties. It is taken at the position of the digit the
judge answered with, over the score tokens among that position's top log-probabilities,
renormalised; with none there, the parsed digit stands.
"""

from __future__ import annotations

import math
import re
from typing import Any

SCALE = range(1, 7)  # the 1-6 scale of Deita's scorers
SCORE_TOKENS = {str(i): i for i in SCALE}

# the first line: an optional "Score:" label, one digit 1-6, an optional "/6" or a full
# stop, then nothing but blanks; anything may follow on later lines (a base model goes on
# with the next demonstration)
_ANSWER = re.compile(r"\s*(?:score\s*:\s*)?([1-6])(?:\s*/\s*6)?\.?[ \t]*(?:\r?\n.*)?", re.IGNORECASE | re.DOTALL)


def parse_score(text: str | None) -> int | None:
    """The score the answer states, 1-6, or None when it is not plainly one.

    Accepted: "4", " 4", "4/6", "4.", "4\\n<anything>", "Score: 4". Refused: "four", "7",
    "0", "4.5", "45", "4 or 5", "between 3 and 4", "", anything else."""
    if not text:
        return None
    match = _ANSWER.fullmatch(text)
    return int(match.group(1)) if match else None


def _entries(logprobs: dict[str, Any]) -> list[tuple[str, dict[str, float]]]:
    """(generated token, {top token: log-prob}) per position, from either answer shape."""
    content = logprobs.get("content")
    if isinstance(content, list):  # chat, and llama.cpp's completions
        out = []
        for entry in content:
            if not isinstance(entry, dict):
                continue
            tops: dict[str, float] = {}
            for top in entry.get("top_logprobs") or []:
                if isinstance(top, dict) and isinstance(top.get("token"), str):
                    _add(tops, top["token"], top.get("logprob"))
            out.append((str(entry.get("token") or ""), tops))
        return out
    tokens = logprobs.get("tokens")
    if isinstance(tokens, list):  # legacy completions (OpenAI, vLLM): parallel lists
        top_lists = logprobs.get("top_logprobs") or []
        out = []
        for i, token in enumerate(tokens):
            tops = {}
            top = top_lists[i] if i < len(top_lists) else None
            if isinstance(top, dict):
                for tok, lp in top.items():
                    _add(tops, str(tok), lp)
            out.append((str(token), tops))
        return out
    return []


def _add(tops: dict[str, float], token: str, logprob: Any) -> None:
    if isinstance(logprob, (int, float)) and not isinstance(logprob, bool) and math.isfinite(logprob):
        tops[token] = max(tops.get(token, -math.inf), float(logprob))


def expected_score(logprobs: dict[str, Any] | None) -> float | None:
    """sum(i * p_i) over the score tokens "1".."6" (blanks stripped) among the top
    log-probabilities at the first generated token that is a score digit, the p_i
    renormalised over those tokens; None when there is no such position or no score token
    among its top log-probabilities."""
    if not isinstance(logprobs, dict):
        return None
    for token, tops in _entries(logprobs):
        if token.strip() not in SCORE_TOKENS:
            continue
        probs: dict[int, float] = {}
        for tok, lp in tops.items():
            value = SCORE_TOKENS.get(tok.strip())
            if value is not None:  # " 4" and "4" are one score
                probs[value] = probs.get(value, 0.0) + math.exp(lp)
        total = sum(probs.values())
        if total <= 0:
            return None
        return sum(value * p for value, p in probs.items()) / total
    return None
