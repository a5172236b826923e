"""Evol-Instruct's elimination rules (WizardLM, section 3.3), each a pure function.

An evolution fails, and its parent goes back into the pool for the next round, when:

1. it adds no information over its parent: an LLM judge answers "Equal"
   (`parse_judge` reads that answer); before any request, `no_information_gain` catches
   a rewrite that is its parent (or an earlier ancestor) again up to case, spacing and
   punctuation, or whose ROUGE-L F against its parent is above `max_parent_rouge_l`;
2. its response contains "sorry" and is shorter than 80 words (`sorry_response`);
3. its response is only punctuation and stop words (`stopwords_only`);
4. it copies the rewriting prompt's scaffolding (`copies_scaffolding`).

The rule names below are what a failed evolution stores as its `rule`, next to the
engine's own filters (truncation, novelty, near-duplicates, model errors).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from app.core.filters.rouge import rouge_l, tokenize

ELIMINATION_RULES = {
    "no_information_gain": "rule 1: the evolved instruction is its parent or an ancestor again (up to case, spacing "
    "and punctuation), or too close to its parent by ROUGE-L, or the judge found it equal to its parent",
    "sorry_response": "rule 2: the response contains 'sorry' and has fewer than 80 words",
    "stopwords_only_response": "rule 3: the response is only punctuation and stop words (or empty)",
    "copied_scaffolding": "rule 4: the evolved instruction copies the rewriting prompt's scaffolding",
}

EVOL_RULES = {
    **ELIMINATION_RULES,
    "judge_unparseable": "the judge answered neither Equal nor Not Equal (only with judge_unparseable=reject)",
    "truncated_evolution": "the rewrite was cut by the token limit",
    "truncated_response": "the response was cut by the token limit",
    "empty": "the rewrite is empty",
    "too_similar": "ROUGE-L F against an instruction in the pool (not an ancestor) above the threshold",
    "near_duplicate": "the evolved example near-duplicates one already kept (MinHash)",
    "contaminated": "the evolved instruction or its response reproduces a benchmark item (decontaminate_against)",
    "llm_error": "the model server failed on this evolution's rewrite, judgement or response",
}

# English stop words: NLTK's `stopwords.words("english")` list (179 words, the list most
# tools use), copied as a fixed set so the rule needs no download and never changes.
STOP_WORDS = frozenset(
    ["i", "me", "my", "myself", "we", "our", "ours", "ourselves", "you", "you're", "you've", "you'll", "you'd", "your", "yours", "yourself", "yourselves", "he", "him", "his", "himself", "she", "she's", "her", "hers", "herself", "it", "it's", "its", "itself", "they", "them", "their", "theirs", "themselves", "what", "which", "who", "whom", "this", "that", "that'll", "these", "those", "am", "is", "are", "was", "were", "be", "been", "being", "have", "has", "had", "having", "do", "does", "did", "doing", "a", "an", "the", "and", "but", "if", "or", "because", "as", "until", "while", "of", "at", "by", "for", "with", "about", "against", "between", "into", "through", "during", "before", "after", "above", "below", "to", "from", "up", "down", "in", "out", "on", "off", "over", "under", "again", "further", "then", "once", "here", "there", "when", "where", "why", "how", "all", "any", "both", "each", "few", "more", "most", "other", "some", "such", "no", "nor", "not", "only", "own", "same", "so", "than", "too", "very", "s", "t", "can", "will", "just", "don", "don't", "should", "should've", "now", "d", "ll", "m", "o", "re", "ve", "y", "ain", "aren", "aren't", "couldn", "couldn't", "didn", "didn't", "doesn", "doesn't", "hadn", "hadn't", "hasn", "hasn't", "haven", "haven't", "isn", "isn't", "ma", "mightn", "mightn't", "mustn", "mustn't", "needn", "needn't", "shan", "shan't", "shouldn", "shouldn't", "wasn", "wasn't", "weren", "weren't", "won", "won't", "wouldn", "wouldn't"]
)

# Phrases of Sprout's rewriting prompts (app/core/methods/prompts/evol_*.txt) that have no place in
# an instruction: the paper's "given prompt", "rewritten prompt", "#Rewritten Prompt#",
# the in-breadth prompt's "created prompt", and the response prompt's field names.
SCAFFOLDING = ("given prompt", "rewritten prompt", "created prompt", "#instruction#", "#response#")

_WORD = re.compile(r"[^\W_]+(?:'[^\W_]+)*")  # letters and digits of any script, inner apostrophes
_SPACES = re.compile(r"\s+")
_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "`": "'"})


def _normal(text: str) -> str:
    """Lower case, straight apostrophes, one space between words."""
    return _SPACES.sub(" ", text.translate(_APOSTROPHES).lower()).strip()


def copies_scaffolding(instruction: str) -> bool:
    """Rule 4. `#Given-Prompt#`-style tags count whatever their separators."""
    text = _normal(instruction)
    loose = _SPACES.sub(" ", re.sub(r"[#_\-:*]+", " ", text))
    return any(p in text for p in SCAFFOLDING) or any(p in loose for p in SCAFFOLDING[:3])


def sorry_response(response: str, max_words: int = 80) -> bool:
    """Rule 2: "sorry" anywhere (any case) and fewer than `max_words` words."""
    return "sorry" in response.lower() and len(response.split()) < max_words


def stopwords_only(response: str) -> bool:
    """Rule 3: no word outside the stop-word list (punctuation and spacing never count).

    An empty response has no content word either, so it fails this rule too.
    """
    return all(word in STOP_WORDS for word in _WORD.findall(_normal(response)))


def response_rule(response: str, finish_reason: str | None, sorry_max_words: int = 80) -> str | None:
    """Why an answer fails, in the order the methods check it: cut at the token limit
    (`truncated_response`), rule 3 (`stopwords_only_response`), rule 2 (`sorry_response`);
    None when it passes. One place for Evol-Instruct, the planned methods and Magpie."""
    if finish_reason == "length":
        return "truncated_response"
    if stopwords_only(response):
        return "stopwords_only_response"
    if sorry_response(response, sorry_max_words):
        return "sorry_response"
    return None


def _words(text: str) -> list[str]:
    return _WORD.findall(_normal(text))


def same_text(a: str, b: str) -> bool:
    """The same words in the same order, whatever the case, spacing and punctuation: an
    evolution that returned its parent (or a trivially edited copy) unchanged."""
    return _words(a) == _words(b)


def no_information_gain(rewrite: str, parent: str, ancestors: Sequence[str] = (),
                        max_parent_rouge_l: float = 1.0) -> str | None:
    """Rule 1 without the judge: why `rewrite` adds nothing over its lineage, or None.

    "identical": the same text as its parent or an earlier ancestor (see `same_text`);
    "close_to_parent": ROUGE-L F (rouge-score's tokens) against the parent above
    `max_parent_rouge_l` — a word or two changed in a rewrite meant to add 10 to 20.
    """
    if any(same_text(rewrite, text) for text in (parent, *ancestors)):
        return "identical"
    if rouge_l(tokenize(parent), tokenize(rewrite)) > max_parent_rouge_l:
        return "close_to_parent"
    return None


_JUDGE_ANSWER = re.compile(r"(not\s+equal|equal)[.!]?")


def parse_judge(answer: str) -> bool | None:
    """The judge's verdict, read strictly: True for "Equal", False for "Not Equal".

    The first line of the answer, stripped, must be exactly one of the two (any case,
    one trailing "." or "!" allowed). Anything else, "Equal, because ...", "Unequal",
    "Yes", an empty answer, returns None (unparseable); the engine then applies the
    job's `judge_unparseable` policy and stores the raw answer.
    """
    lines = answer.strip().splitlines()
    if not lines:
        return None
    match = _JUDGE_ANSWER.fullmatch(lines[0].strip().lower())
    if match is None:
        return None
    return not match.group(1).startswith("not")
