"""Magpie's query filters, each a pure function returning a rule name (or None).

Magpie's authors filter the queries a model writes before anything else: an empty or cut
query, a "query" that is really the model answering (an aligned model given its template
sometimes skips the user and starts its own turn: "Sure! Here is..."), and a query not in
the wanted language (they tag languages and keep English). Sprout's own rules (length,
blacklist, decontamination, ROUGE-L novelty, the answer's rules, near-duplicates) run
after these, as for every method. The rule names are what a rejected candidate stores.

The language check is a cheap heuristic, not a classifier: a query whose letters are mostly
not Latin is not English (nor French, ...); a Latin-script query is given the language
whose common function words it uses most, among a few European languages, when it uses
at least two of them (a short query with none passes).
"""

from __future__ import annotations

import re

MAGPIE_RULES = {
    "empty_query": "the model wrote no query (an empty user turn)",
    "truncated_query": "the query was cut by the token limit before the model ended its user turn",
    "query_is_answer": "the query reads as the assistant's reply (\"Sure\", \"Certainly\", \"Here is\", a "
    "greeting that offers help), not a user's request",
    "wrong_language": "the query is not in the job's `language` (script and function-word heuristic)",
    "truncated_response": "an answer was cut by the token limit",
    "stopwords_only_response": "an answer is only punctuation and stop words (or empty)",
    "sorry_response": "an answer contains 'sorry' and is short (Evol-Instruct's rule 2)",
}

# how an assistant's turn begins: a query that opens so is the model answering, not asking
_ANSWER_OPENINGS = re.compile(
    r"^\W*(sure\b|certainly\b|of course\b|absolutely\b|here is\b|here's\b|here are\b|great question|"
    r"good question|i'd be (happy|glad)|i would be (happy|glad)|i'm (happy|glad) to|i am (happy|glad) to|"
    r"as an ai\b|thank you for (your|the) question|(hello|hi|hey)\b[^.?!]{0,40}[.!,]?\s*(how|what) can i "
    r"(help|assist)|how can i (help|assist) you|how may i (help|assist) you)",
    re.IGNORECASE,
)

_WORD = re.compile(r"[^\W\d_]+", re.UNICODE)


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split(" "))


STOPWORDS: dict[str, frozenset[str]] = {
    "en": _words("the and is are to of in for you your with what how can this that it my do i on be"),
    "fr": _words("le la les des est une et pour dans vous que qui sur avec mon je ne pas du au"),
    "es": _words("el los las es una y para en que con mi por como del se lo al pero yo"),
    "de": _words("der die das und ist ein eine ich nicht zu mit für auf wie was sie den dem ein"),
    "it": _words("il lo gli della sono una e per che con mio come del non di questo"),
    "pt": _words("o os um uma e para em que com meu por como do da não é você"),
    "nl": _words("de het een en is van ik niet op met voor zijn dat wat hoe"),
}
LANGUAGES = tuple(STOPWORDS)


def empty_query(text: str) -> str | None:
    return "empty_query" if not text.strip() else None


def truncated_query(finish_reason: str | None) -> str | None:
    """Cut by the length limit: the model never ended its user turn (no end-of-turn token)."""
    return "truncated_query" if finish_reason == "length" else None


def query_is_answer(text: str) -> str | None:
    """A query that opens as an assistant's reply does."""
    return "query_is_answer" if _ANSWER_OPENINGS.search(text.strip()) else None


def detect_language(text: str) -> str | None:
    """A guess: "other" for mostly non-Latin letters, else the language of `STOPWORDS` whose
    function words the text uses most (at least two), else None (too little to tell)."""
    letters = [c for c in text if c.isalpha()]
    if not letters:
        return None
    latin = sum(1 for c in letters if c.isascii() or "\u00c0" <= c <= "\u024f")
    if latin / len(letters) < 0.7:
        return "other"
    words = [w.lower() for w in _WORD.findall(text)]
    hits = {lang: sum(1 for w in words if w in stop) for lang, stop in STOPWORDS.items()}
    best = max(hits, key=lambda lang: (hits[lang], lang == "en"))
    return best if hits[best] >= 2 else None


def wrong_language(text: str, language: str) -> str | None:
    """The query is not in `language` ("any": no check); a query too short to tell passes."""
    if language == "any":
        return None
    found = detect_language(text)
    return "wrong_language" if found is not None and found != language else None


def query_rule(text: str, finish_reason: str | None, language: str) -> str | None:
    """Magpie's rules on one query, in order: cut, empty, an answer, the language."""
    return (truncated_query(finish_reason) or empty_query(text) or query_is_answer(text)
            or wrong_language(text, language))
