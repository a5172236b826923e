"""How varied a set of instructions is: the figures a diversity report shows for a job or a dataset version.

* distinct-1 and distinct-2 (Li et al., 2016): distinct word unigrams (bigrams) over all
  unigrams (bigrams) of the instructions, with ROUGE's tokenizer (lowercase alphanumeric runs);
* each instruction's maximum ROUGE-L F to the *other* instructions of the set (the
  Self-Instruct paper's similarity figure), exact, through the novelty filter's index
  (`filters.novelty.NoveltyIndex`: every instruction is added, each one is then looked up and
  its own entry left out); shown as a histogram over [0, 1] with its mean and quantiles. On a
  large set the lookups are made for a seeded sample of `rouge_sample` instructions, each
  still against the whole set (the report says so);
* verb-noun coverage: the share of instructions with a root verb (`verb_noun`), the number of
  distinct verbs and verb-noun pairs, and the top verbs with their top objects (the paper's
  inner and outer rings);

for the whole set and by group: the method (the job kind that made the row), the persona and
the topic path when rows carry them. Rows are dicts with `instruction` and optionally
`method`, `persona` and `topic_path` (a list of topic names or a " > "-joined string).
"""

from __future__ import annotations

import hashlib
import heapq
import random
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from app.core.filters.novelty import NoveltyIndex
from app.core.filters.rouge import tokenize
from app.core.verb_noun import verb_noun

BINS = 10  # histogram bins of width 0.1 over [0, 1]
GROUPS = ("method", "persona", "topic")
TOP_VERBS = 20  # the paper's figure: the 20 most common root verbs ...
TOP_NOUNS = 4  # ... and each one's 4 most common direct objects
MAX_GROUPS = 50  # groups reported per key (the largest)


@dataclass(frozen=True)
class Item:
    instruction: str
    groups: dict[str, str]


def distinct_n(token_lists: Iterable[Sequence[str]], n: int) -> float | None:
    """Distinct n-grams over all n-grams (None when there is none)."""
    total, seen = 0, set()
    for tokens in token_lists:
        for i in range(len(tokens) - n + 1):
            seen.add(tuple(tokens[i:i + n]))
            total += 1
    return len(seen) / total if total else None


def max_rouge_to_rest(texts: Sequence[str], sample: Sequence[int] | None = None) -> list[float]:
    """Each text's (or each sampled position's) maximum ROUGE-L F to every other text of `texts`.

    Exact: the novelty index's top-2 lookup, with the text's own entry left out (an identical
    copy elsewhere in the set still scores 1.0)."""
    index = NoveltyIndex(threshold=1.0, top_k=2, mean_sample=0, exact_below_threshold=True)
    index.add_many(texts)
    out = []
    for i in (range(len(texts)) if sample is None else sample):
        found = list(index.check(texts[i]).most_similar)
        for k, (text, _) in enumerate(found):
            if text == texts[i]:
                del found[k]
                break
        out.append(found[0][1] if found else 0.0)
    return out


def histogram(values: Sequence[float], bins: int = BINS) -> dict[str, Any]:
    """Counts per bin over [0, 1] (the last bin includes 1.0), with the edges."""
    counts = [0] * bins
    for value in values:
        counts[min(int(value * bins), bins - 1)] += 1
    return {"edges": [round(i / bins, 6) for i in range(bins + 1)], "counts": counts}


def _quantile(sorted_values: Sequence[float], q: float) -> float | None:
    if not sorted_values:
        return None
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


def rouge_summary(values: Sequence[float], sampled: bool) -> dict[str, Any]:
    ordered = sorted(values)
    return {
        "rows_scored": len(values), "sampled": sampled,
        "mean": sum(values) / len(values) if values else None,
        "median": _quantile(ordered, 0.5), "p90": _quantile(ordered, 0.9),
        "histogram": histogram(values),
    }


def verb_noun_summary(pairs: Sequence[tuple[str, str | None] | None]) -> dict[str, Any]:
    """Coverage, distinct verbs and pairs, the top verbs with their top objects."""
    with_verb = [p for p in pairs if p is not None]
    with_pair = [p for p in with_verb if p[1] is not None]
    verbs = Counter(v for v, _ in with_verb)
    nouns: dict[str, Counter[str]] = defaultdict(Counter)
    for verb, noun in with_pair:
        nouns[verb][noun] += 1  # type: ignore[index]
    n = len(pairs)
    return {
        "instructions": n,
        "with_verb": len(with_verb), "with_verb_noun": len(with_pair),
        "coverage": len(with_pair) / n if n else None,
        "distinct_verbs": len(verbs), "distinct_pairs": len(set(with_pair)),
        "top_verbs": [{"verb": verb, "count": count,
                       "nouns": [{"noun": noun, "count": c} for noun, c in nouns[verb].most_common(TOP_NOUNS)]}
                      for verb, count in verbs.most_common(TOP_VERBS)],
    }


def grouping_fields(row: Mapping[str, Any]) -> dict[str, Any]:
    """What the report reads of a row (its instruction and groups), to keep instead of the whole row;
    a persona or topic path recorded in the row's lineage root counts as the row's."""
    out = {key: row.get(key) for key in ("instruction", "method", "persona", "topic_path") if row.get(key)}
    lineage = row.get("lineage")
    root = lineage[0] if isinstance(lineage, list) and lineage else {}
    if isinstance(root, Mapping):
        for key in ("persona", "topic_path"):
            if root.get(key) and key not in out:
                out[key] = root[key]
    return out


def item_of(row: Mapping[str, Any]) -> Item:
    """A row's instruction and its groups (method, persona, topic) where it has them."""
    groups = {}
    method = row.get("method")
    if isinstance(method, str) and method:
        groups["method"] = method
    persona = row.get("persona")
    if isinstance(persona, str) and persona.strip():
        groups["persona"] = persona.strip()
    topic = row.get("topic_path")
    if isinstance(topic, list) and topic:
        topic = " > ".join(str(t) for t in topic)
    if isinstance(topic, str) and topic.strip():
        groups["topic"] = topic.strip()
    return Item(str(row.get("instruction") or ""), groups)


def summary(items: Sequence[Item], rouge: Sequence[float], sampled: bool, verbs: bool = True) -> dict[str, Any]:
    tokens = [tokenize(item.instruction) for item in items]
    out: dict[str, Any] = {
        "rows": len(items),
        "distinct_1": distinct_n(tokens, 1), "distinct_2": distinct_n(tokens, 2),
        "max_rouge_l": rouge_summary(rouge, sampled),
    }
    pairs = [verb_noun(item.instruction) for item in items]
    vn = verb_noun_summary(pairs)
    out["verb_noun"] = vn if verbs else {k: vn[k] for k in vn if k != "top_verbs"} | {
        "top_verbs": vn["top_verbs"][:5]}
    return out


def report(rows: Iterable[Mapping[str, Any]], *, rouge_sample: int = 5000, seed: int = 0) -> dict[str, Any]:
    """The whole report: `overall` and `by` group key (method, persona, topic) -> group name -> summary.

    Each instruction's max ROUGE-L is to the whole set (not only its group); a group's
    histogram is over its own rows' values. With more rows than `rouge_sample`, a seeded
    sample of that many rows is looked up (`overall.max_rouge_l.sampled` is then true)."""
    items = [item_of(grouping_fields(row)) for row in rows]
    texts = [item.instruction for item in items]
    sampled = len(items) > rouge_sample
    positions = sorted(random.Random(seed).sample(range(len(items)), rouge_sample)) if sampled \
        else list(range(len(items)))
    scores = dict(zip(positions, max_rouge_to_rest(texts, positions)))
    result: dict[str, Any] = {
        "overall": summary(items, list(scores.values()), sampled),
        "by": {},
        "notes": {
            "max_rouge_l": "each instruction's maximum ROUGE-L F to every other instruction of the set",
            "verb_noun": "root verb and direct object by a heuristic for imperative instructions "
                         "(app.core.verb_noun); coverage: the share with both",
        },
    }
    for key in GROUPS:
        members: dict[str, list[int]] = defaultdict(list)
        for i, item in enumerate(items):
            if key in item.groups:
                members[item.groups[key]].append(i)
        if not members:
            continue
        largest = sorted(members.items(), key=lambda kv: (-len(kv[1]), kv[0]))[:MAX_GROUPS]
        result["by"][key] = {
            name: summary([items[i] for i in ids], [scores[i] for i in ids if i in scores], sampled, verbs=False)
            for name, ids in largest
        }
    return result


VERSION_FIELDS = ("id", "instruction", "method", "source_job_id", "source_instruction_id", "lineage")


def version_items(rows: Iterable[Mapping[str, Any]]) -> Iterator[dict[str, Any]]:
    """A dataset version's rows (`VERSION_FIELDS`) as the report reads them, each instruction once:
    rows from the same source instruction (a Self-Instruct task's several instances) count
    once; a row made outside a job counts on its own."""
    seen: set[tuple[Any, Any]] = set()
    for row in rows:
        job, ident = row.get("source_job_id"), row.get("source_instruction_id")
        if job is not None and ident is not None:
            if (job, ident) in seen:
                continue
            seen.add((job, ident))
        yield grouping_fields(row)


def row_key(row: Mapping[str, Any]) -> tuple[Any, ...]:
    """What makes a version row one instruction: its source (job, instruction) when it has
    one (a Self-Instruct task's several instances share it), else its own id."""
    job, ident = row.get("source_job_id"), row.get("source_instruction_id")
    if job is not None and ident is not None:
        return ("job", int(job), int(ident))
    return ("row", int(row.get("id") or 0))


def _rank(seed: int, key: tuple[Any, ...]) -> int:
    """A key's place in the seeded sample order: a 64-bit hash of the seed and the key, so the
    sample depends only on the rows, never on their order or on the process (unlike `hash`)."""
    text = f"{seed}:{':'.join(str(part) for part in key)}".encode()
    return int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "big")


@dataclass
class BoundedSample:
    """What `bounded_version_items` kept: the items in the order they were read, the rows read
    (`of`, counting each instance row), and whether some instructions were left out."""
    items: list[Any]
    of: int
    sampled: bool

    def marker(self) -> dict[str, int] | None:
        """The report's `sampled` entry: `{"rows": instructions kept, "of": version rows read}`."""
        return {"rows": len(self.items), "of": self.of} if self.sampled else None


def bounded_version_items(rows: Iterable[Mapping[str, Any]], limit: int, seed: int = 0,
                          keep: Callable[[Mapping[str, Any]], Any] = grouping_fields) -> BoundedSample:
    """`version_items` bounded to `limit` instructions, in memory that does not grow with the rows.

    A bottom-k sample: each instruction (`row_key`) gets a seeded hash rank, and the `limit`
    instructions of lowest rank are kept (a heap of at most `limit`). The same rows give the
    same sample whatever their order, and every instruction is equally likely to be in it.
    Instances of one instruction share a rank, so the first one read stands for them all, as
    in `version_items` (a later instance of a dropped instruction ranks above the bound, which
    only falls). With at most `limit` instructions every one is kept, in the order read:
    exactly `version_items`' output. `keep` is what an item holds of its row (by default the
    report's fields; a commit keeps the row's id and reads the kept rows' text afterwards, so
    its pass over every row reads three integers a row)."""
    heap: list[tuple[int, tuple[Any, ...]]] = []  # (-rank, key): the largest kept rank on top
    kept: dict[tuple[Any, ...], tuple[int, Any]] = {}  # key -> (read order, what `keep` kept)
    dropped = False
    read = 0
    for row in rows:
        read += 1
        key = row_key(row)
        if key in kept:
            continue
        rank = _rank(seed, key)
        if len(heap) < limit:
            heapq.heappush(heap, (-rank, key))
        elif heap and -heap[0][0] > rank:
            _, out = heapq.heapreplace(heap, (-rank, key))
            del kept[out]
            dropped = True
        else:
            dropped = True
            continue
        kept[key] = (read, keep(row))
    items = [fields for _, fields in sorted(kept.values(), key=lambda v: v[0])]
    return BoundedSample(items, read, dropped)


def stored_form(report_: Mapping[str, Any]) -> dict[str, Any]:
    """The report as a version keeps it (`counts["diversity"]`): the groups' figures without
    their verb lists, so a version's counts stay small; the overall figures whole."""
    by = {key: {name: {**s, "verb_noun": {k: v for k, v in s["verb_noun"].items() if k != "top_verbs"}}
                for name, s in groups.items()}
          for key, groups in report_["by"].items()}
    out = {"overall": report_["overall"], "by": by, "notes": report_.get("notes", {})}
    if report_.get("sampled"):
        out["sampled"] = report_["sampled"]
    return out


def text_lines(report_: Mapping[str, Any]) -> list[str]:
    """The report as a few lines of plain text (the CLI's output)."""
    def line(name: str, s: Mapping[str, Any]) -> str:
        r, vn = s["max_rouge_l"], s["verb_noun"]
        def f(x: Any) -> str:
            return "-" if x is None else f"{x:.3f}"
        return (f"{name}: {s['rows']} rows, distinct-1 {f(s['distinct_1'])}, distinct-2 {f(s['distinct_2'])}, "
                f"max ROUGE-L mean {f(r['mean'])} median {f(r['median'])} p90 {f(r['p90'])}, "
                f"verb-noun coverage {f(vn['coverage'])} ({vn['distinct_verbs']} verbs, {vn['distinct_pairs']} pairs)")
    overall = report_["overall"]
    lines = [line("all", overall)]
    hist = overall["max_rouge_l"]["histogram"]
    lines.append("max ROUGE-L histogram: " + ", ".join(
        f"[{a:.1f},{b:.1f}{']' if i == len(hist['counts']) - 1 else ')'} {c}"
        for i, (a, b, c) in enumerate(zip(hist["edges"], hist["edges"][1:], hist["counts"]))))
    if report_.get("sampled"):
        lines.append(f"(sampled: {report_['sampled']['rows']:,} instructions of {report_['sampled']['of']:,} rows; "
                     "every figure is over the sample)")
    if overall["max_rouge_l"]["sampled"]:
        lines.append(f"(ROUGE-L of a sample of {overall['max_rouge_l']['rows_scored']} rows, each against all)")
    top = overall["verb_noun"]["top_verbs"][:10]
    if top:
        lines.append("top verbs: " + "; ".join(
            f"{v['verb']} {v['count']} ({', '.join(n['noun'] for n in v['nouns']) or '-'})" for v in top))
    for key, groups in report_["by"].items():
        for name, s in groups.items():
            lines.append(line(f"{key} {name!r}", s))
    return lines
