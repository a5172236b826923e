"""An instruction's root verb and its direct object, for the Self-Instruct paper's verb-noun figure.

The paper parsed each instruction with the Berkeley Neural Parser and kept the verb closest
to the root and its first direct noun object. No parser model can be installed from the
package registries this service uses (spaCy's and NLTK's models are separate downloads),
so this is a documented heuristic for the shape instructions take, the imperative:

* the verb is the first word, after a polite opening ("please", "can you", "could you
  please") and after a leading clause closed by a comma ("Given a list of numbers, sort
  them" -> "sort"); an opening that cannot start an imperative (a wh-word, an auxiliary, a
  pronoun, an article: "What is ...", "Is it ...", "The ...") means no verb-noun pair, as
  for the questions and statements the paper's parser found none in;
* the object is the head of the noun phrase that follows: the last content word before a
  word that ends the phrase (a preposition, a conjunction, "that", "to", a wh-word, a
  punctuation mark, a number or the end), past leading pronouns ("me", "us"), articles,
  quantifiers and numbers: "Write a short poem about rain" -> ("write", "poem"), "Give me
  three tips for sleeping" -> ("give", "tips").

It is wrong where English is irregular (an adjective phrase with no noun, a gerund read as
the head); the figure counts pairs over thousands of instructions, where such errors are
few and spread. `tests/unit/test_diversity.py` holds it to hand-written cases.
"""

from __future__ import annotations

import re

_WORD = re.compile(r"[A-Za-z][A-Za-z'-]*|\d[\d,.]*|[^\sA-Za-z\d]")


def _word_set(text: str) -> frozenset[str]:
    return frozenset(text.split())


POLITE = ("please", "kindly")
ASK_OPENINGS = (("can", "you"), ("could", "you"), ("would", "you"), ("will", "you"))
# words that cannot open an imperative: the instruction is a question or a statement
NOT_VERBS = _word_set("""
what which who whom whose when where why how is are was were am be been do does did can could would will shall
should may might must has have had the a an this that these those i you he she it we they my your his her its our
their there here if in on at for of from by as with to and or but not no yes all some any each every one two three
""")
# words that end the object's noun phrase
BOUNDARY = _word_set("""
about above across after against along among around as at before behind below beneath beside between beyond by
despite down during except for from in inside into like near of off on onto out outside over past since through
throughout till to toward towards under until up upon with within without and or but nor so yet that which who whom
whose where when why how whether if than because while although though using based given
""")
# words skipped before the phrase's head, and never taken as the head
SKIP = _word_set("""
a an the this that these those me us him her them it you my your his its our their some any each every all both
few several many much more most other another such following given new short long brief simple detailed good
one two three four five six seven eight nine ten twenty hundred very
""")
# endings of adjectives and adverbs: after a head was found, such a word does not replace it
# ("make the text more formal" -> "text")
ADJECTIVE_ENDINGS = ("al", "ive", "ous", "ful", "less", "able", "ible", "ic", "ly", "ish", "ent", "ant")


def words(text: str) -> list[str]:
    return _WORD.findall(text)


def verb_noun(instruction: str) -> tuple[str, str | None] | None:
    """(root verb, direct object or None) of an imperative instruction, lowercased; None when it opens
    with no verb (a question or a statement)."""
    tokens = [t.lower() for t in words(instruction.strip())]
    tokens = _after_opening_clause(tokens)
    while tokens and tokens[0] in POLITE:
        tokens = tokens[1:]
    for ask in ASK_OPENINGS:
        if tuple(tokens[: len(ask)]) == ask:
            tokens = tokens[len(ask):]
            while tokens and tokens[0] in POLITE:
                tokens = tokens[1:]
            break
    if not tokens or not tokens[0].isalpha() or tokens[0] in NOT_VERBS:
        return None
    return tokens[0], _object(tokens[1:])


def _after_opening_clause(tokens: list[str]) -> list[str]:
    """Past a leading clause ("given ...,", "if ...,", "for each ...,", "using ...,") to the main verb."""
    if tokens and tokens[0] in ("given", "if", "for", "using", "based", "in", "when", "after", "before") \
            and "," in tokens:
        return tokens[tokens.index(",") + 1:]
    return tokens


def _object(tokens: list[str]) -> str | None:
    head = None
    for tok in tokens:
        if not tok[0].isalpha():
            if tok[0].isdigit() or tok in ("-", "'", '"'):
                continue  # "three tips", "a 500-word essay": a number or a hyphen inside the phrase
            break
        if tok in BOUNDARY:
            break
        if tok in SKIP:
            continue
        if head is not None and tok.endswith(ADJECTIVE_ENDINGS):
            continue
        head = tok
    return head
