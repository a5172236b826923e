"""Benchmark decontamination: does a candidate reproduce an evaluation item?

The rule is the one open-instruct uses in practice: texts become lower-cased word tokens,
and a candidate is *contaminated* by a benchmark item when the word n-grams (n = 8) it
shares with that item cover more than `threshold` (0.5) of the item's tokens. An exact
match after normalisation (same token sequence) is contaminated too, which also covers
items shorter than n tokens. The strict mode (open-r1's) rejects on any shared n-gram.

An n-gram hash index over the benchmark items makes a check O(candidate length): the
candidate's distinct n-grams are hashed and looked up; only the items they hit are
scored, from the item positions stored with each n-gram. `reference_check` is the
brute-force pairwise definition the index must agree with (tests and the benchmark).

Fields: a benchmark item has a prompt (instruction + input) and an output; a candidate's
prompt is compared with the items' prompts and its output with their outputs, for the
fields named in `fields`. `short_exact` names the fields on which an item shorter than n
counts by exact match: both by default; the jobs' indexes (benchmark sets and evaluation
tasks, `app.core.jobs.decontamination`) leave outputs out, because a short answer (a
label, a number: "Positive", "4") is shared by unrelated tasks and says nothing about
which one was copied.

`Indexes` checks several indexes (each with its own settings) as one: a job's benchmark
sets and the trainer's evaluation tasks.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

FIELDS = ("prompt", "output")
_WORD = re.compile(r"\w+")


def tokens(text: str) -> list[str]:
    """Lower-cased word tokens; punctuation and spacing are ignored."""
    return _WORD.findall(text.lower())


def prompt_text(instruction: str, input: str = "") -> str:
    """The text of a prompt field: instruction and input together."""
    return f"{instruction}\n{input}" if input else instruction


@dataclass(frozen=True)
class BenchmarkItem:
    benchmark: str  # the benchmark's name
    item: str  # the item's id within it
    prompt: str
    output: str = ""


@dataclass(frozen=True)
class Contamination:
    """Why a candidate is contaminated: the benchmark item hit and how much of it is covered."""

    benchmark: str
    item: str
    field: str  # "prompt" or "output"
    overlap: float  # fraction of the item's tokens covered by shared n-grams
    exact: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {"benchmark": self.benchmark, "item": self.item, "field": self.field,
                "overlap": round(self.overlap, 6), "exact": self.exact}


@dataclass
class _FieldIndex:
    n: int
    grams: dict[int, Any] = field(default_factory=dict)  # n-gram hash -> (item, start) or a list of them
    exact: dict[int, list[int]] = field(default_factory=dict)  # hash of the whole token sequence -> items
    lengths: list[int] = field(default_factory=list)  # tokens per item

    short_exact: bool = True  # an item shorter than n matches an exact copy

    def add(self, index: int, toks: list[str]) -> None:
        self.lengths.append(len(toks))
        if not toks:
            return
        if len(toks) < self.n and self.short_exact:  # longer items are found through their n-grams
            self.exact.setdefault(hash(tuple(toks)), []).append(index)
        for start, gram in enumerate(zip(*(toks[i:] for i in range(self.n)))):
            key = hash(gram)
            entry = (index, start)
            held = self.grams.get(key)
            if held is None:
                self.grams[key] = entry
            elif isinstance(held, list):
                held.append(entry)
            else:
                self.grams[key] = [held, entry]


class DecontaminationIndex:
    """Benchmark items, indexed by their word n-grams; `check` a candidate against all of them."""

    def __init__(self, n: int = 8, threshold: float = 0.5, fields: Sequence[str] = FIELDS, strict: bool = False,
                 short_exact: Sequence[str] = FIELDS):
        if n < 1:
            raise ValueError("n must be at least 1")
        if not 0 <= threshold < 1:
            raise ValueError("threshold must be in [0, 1)")
        unknown = sorted(set(fields) - set(FIELDS))
        if unknown or not fields:
            raise ValueError(f"fields must be among {', '.join(FIELDS)}; got {', '.join(fields) or 'none'}")
        self.n, self.threshold, self.strict = n, threshold, strict
        self.fields = tuple(f for f in FIELDS if f in fields)
        self.items: list[BenchmarkItem] = []
        self._index = {f: _FieldIndex(n, short_exact=f in short_exact) for f in self.fields}
        self._tokens: dict[str, list[list[str]]] = {f: [] for f in self.fields}

    def __len__(self) -> int:
        return len(self.items)

    def add(self, item: BenchmarkItem) -> None:
        position = len(self.items)
        self.items.append(item)
        for name in self.fields:
            toks = tokens(item.prompt if name == "prompt" else item.output)
            self._index[name].add(position, toks)
            self._tokens[name].append(toks)

    def add_many(self, items: Iterable[BenchmarkItem]) -> None:
        for item in items:
            self.add(item)

    def check(self, prompt: str, output: str = "") -> Contamination | None:
        """The worst contamination of a candidate (its prompt and output), or None when clean."""
        found: Contamination | None = None
        for name in self.fields:
            hit = self._check_field(name, prompt if name == "prompt" else output)
            if hit is not None and (found is None or hit.overlap > found.overlap):
                found = hit
        return found

    def _check_field(self, name: str, text: str) -> Contamination | None:
        toks = tokens(text)
        if not toks:
            return None
        index, n = self._index[name], self.n
        if len(toks) < n:  # no n-gram: only an item of the same tokens can match
            for position in index.exact.get(hash(tuple(toks)), ()):
                if self._tokens[name][position] == toks:
                    item = self.items[position]
                    return Contamination(item.benchmark, item.item, name, 1.0, exact=True)
            return None
        # An exact copy of a longer item covers all of it, so the n-grams find it too.
        starts: dict[int, list[int]] = {}
        grams = index.grams
        # the candidate's distinct n-gram hashes, intersected with the index's in C
        for key in grams.keys() & set(map(hash, zip(*(toks[i:] for i in range(n))))):
            held = grams[key]
            for position, start in (held if isinstance(held, list) else (held,)):
                starts.setdefault(position, []).append(start)
        best, best_position = None, -1
        for position in sorted(starts):  # ties go to the first item, as in `reference_check`
            overlap = _covered(starts[position], n) / index.lengths[position]
            if (self.strict or overlap > self.threshold) and (best is None or overlap > best):
                best, best_position = overlap, position
        if best is None:
            return None
        item = self.items[best_position]
        return Contamination(item.benchmark, item.item, name, best, exact=self._tokens[name][best_position] == toks)


def _covered(starts: list[int], n: int) -> int:
    """Tokens covered by n-grams starting at `starts` (a union of intervals)."""
    starts.sort()
    covered, end = 0, -1
    for s in starts:
        stop = s + n
        if stop > end:
            covered += stop - max(s, end)
            end = stop
    return covered


def reference_check(items: Sequence[BenchmarkItem], prompt: str, output: str = "", n: int = 8,
                    threshold: float = 0.5, fields: Sequence[str] = FIELDS,
                    strict: bool = False, short_exact: Sequence[str] = FIELDS) -> Contamination | None:
    """The brute-force definition: every item, every item position, no index (tests and benchmark)."""
    best: Contamination | None = None
    for name in (f for f in FIELDS if f in fields):
        cand = tokens(prompt if name == "prompt" else output)
        if not cand:
            continue
        cand_grams = {tuple(cand[i:i + n]) for i in range(len(cand) - n + 1)}
        hit: Contamination | None = None
        for item in items:
            toks = tokens(item.prompt if name == "prompt" else item.output)
            if not toks:
                continue
            if toks == cand and len(toks) < n and name in short_exact:
                if hit is None or hit.overlap < 1.0:
                    hit = Contamination(item.benchmark, item.item, name, 1.0, exact=True)
                continue
            marked = [False] * len(toks)
            shared = False
            for i in range(len(toks) - n + 1):
                if tuple(toks[i:i + n]) in cand_grams:
                    shared = True
                    for j in range(i, i + n):
                        marked[j] = True
            overlap = sum(marked) / len(toks)
            if shared and (strict or overlap > threshold) and (hit is None or overlap > hit.overlap):
                hit = Contamination(item.benchmark, item.item, name, overlap, exact=toks == cand)
        if hit is not None and (best is None or hit.overlap > best.overlap):
            best = hit
    return best


class Checker(Protocol):
    """What the methods screen with: one index, or `Indexes`."""

    def check(self, prompt: str, output: str = "") -> Contamination | None: ...


class Indexes:
    """Several indexes, each with its own settings, checked as one: the worst hit."""

    def __init__(self, indexes: Iterable[DecontaminationIndex]):
        self.indexes = [i for i in indexes if len(i)]

    def __len__(self) -> int:
        return sum(len(i) for i in self.indexes)

    def check(self, prompt: str, output: str = "") -> Contamination | None:
        found: Contamination | None = None
        for index in self.indexes:
            hit = index.check(prompt, output)
            if hit is not None and (found is None or hit.overlap > found.overlap):
                found = hit
        return found


def screen(index: Checker, record: Any) -> str | None:
    """The methods' filter: check a candidate (`CandidateRecord`) at its decision point.

    Its instruction is checked as a prompt, then each accepted instance as (instruction +
    input, output); a contaminated instance gets the rule `contaminated`. Every hit is
    listed in `record.detail["contamination"]`. Returns `"contaminated"` when the
    instruction is, or when instances were given and none is left, else None.
    """
    hits = []
    hit = index.check(record.instruction)
    if hit is not None:
        hits.append({**hit.as_dict(), "instance": None})
    alive = [inst for inst in record.instances if inst.accepted]
    for position, inst in enumerate(record.instances):
        if hit is not None or not inst.accepted:
            continue
        found = index.check(prompt_text(record.instruction, inst.input), inst.output)
        if found is not None:
            inst.rule = "contaminated"
            hits.append({**found.as_dict(), "instance": position})
    if hits:
        record.detail.setdefault("contamination", []).extend(hits)
    if hit is not None or (alive and not any(inst.accepted for inst in alive)):
        return "contaminated"
    return None


def merge_reports(reports: Iterable[dict[str, Any] | None]) -> dict[str, Any]:
    """Several reports as one (a dataset version's, over its build's step jobs): candidates
    hit add up; per benchmark, the hits per item add up and `items_hit` counts each item once."""
    by_benchmark: dict[str, dict[str, int]] = {}
    candidates = 0
    for one in reports:
        if not one:
            continue
        candidates += int(one.get("candidates_hit") or 0)
        for name, figures in (one.get("benchmarks") or {}).items():
            items = by_benchmark.setdefault(name, {})
            for item, hits in (figures.get("items") or {}).items():
                items[item] = items.get(item, 0) + int(hits)
    return _summary(candidates, by_benchmark)


def report(details: Iterable[dict[str, Any] | None]) -> dict[str, Any]:
    """A job's contamination report from its candidates' `detail`: items hit, by benchmark."""
    by_benchmark: dict[str, dict[str, int]] = {}
    candidates = 0
    for detail in details:
        hits = (detail or {}).get("contamination") or []
        if hits:
            candidates += 1
        for hit in hits:
            items = by_benchmark.setdefault(hit["benchmark"], {})
            items[hit["item"]] = items.get(hit["item"], 0) + 1
    return _summary(candidates, by_benchmark)


def _summary(candidates: int, by_benchmark: dict[str, dict[str, int]]) -> dict[str, Any]:
    return {
        "candidates_hit": candidates,
        "benchmarks": {name: {"items_hit": len(items), "hits": sum(items.values()), "items": dict(sorted(items.items()))}
                       for name, items in sorted(by_benchmark.items())},
    }
