"""The diversity report (`app.core.diversity`) as a Markdown section, one rendering for both
cards that show it: the dataset version's card (`datasets.version_card`, stored at commit) and
the hand-off bundle's card (`handoff.hub_card`), with the Markdown table both cards draw with.
"""

from __future__ import annotations

import json
from typing import Any


def table(header: tuple[str, ...], rows: list[tuple[Any, ...]]) -> list[str]:
    """A Markdown table; None shows as a dash, and `|` or a newline never breaks a row."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return lines


def cell(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, (dict, list)):
        value = json.dumps(value, ensure_ascii=False)
    return str(value).replace("|", "\\|").replace("\n", " ")


def figure(value: Any) -> str | None:
    return None if value is None else f"{value:.3f}"


def section(report: dict[str, Any]) -> list[str]:
    """The figures, the ROUGE-L histogram, the top verbs, and the figures by method, persona and topic."""
    overall = report["overall"]
    rouge, vn = overall["max_rouge_l"], overall["verb_noun"]
    sample = f" (a seeded sample of {rouge['rows_scored']}, each against all)" if rouge["sampled"] else ""
    bounded = report.get("sampled")
    over = (f"Over a seeded sample of {bounded['rows']:,} instructions of the version's {bounded['of']:,} rows "
            "(sampled: every figure below is over the sample)" if bounded
            else f"Over {overall['rows']} instructions")
    lines = ["## Diversity", "",
             f"{over} (each counted once). Max ROUGE-L: each instruction's highest "
             f"ROUGE-L F to every other instruction here{sample}. Verb-noun: the root verb and its direct object, "
             "by a heuristic for imperative instructions.", ""]
    lines += table(("distinct-1", "distinct-2", "max ROUGE-L mean", "median", "p90", "verb-noun coverage",
                    "verbs", "verb-noun pairs"),
                   [(figure(overall["distinct_1"]), figure(overall["distinct_2"]), figure(rouge["mean"]),
                     figure(rouge["median"]), figure(rouge["p90"]), figure(vn["coverage"]), vn["distinct_verbs"],
                     vn["distinct_pairs"])]) + [""]
    hist = rouge["histogram"]
    lines += table(("max ROUGE-L", "instructions"),
                   [(f"{a:.1f}–{b:.1f}", n) for a, b, n in zip(hist["edges"], hist["edges"][1:], hist["counts"])])
    lines += [""]
    if vn["top_verbs"]:
        lines += ["Top root verbs and their most common objects:", ""]
        lines += table(("verb", "instructions", "objects"),
                       [(v["verb"], v["count"], ", ".join(f"{n['noun']} ({n['count']})" for n in v["nouns"]) or None)
                        for v in vn["top_verbs"][:10]]) + [""]
    groups = [(key, name, s) for key, named in report["by"].items() for name, s in named.items()]
    if groups:
        lines += table(("by", "group", "instructions", "distinct-1", "distinct-2", "max ROUGE-L mean",
                        "verb-noun coverage"),
                       [(key, name, s["rows"], figure(s["distinct_1"]), figure(s["distinct_2"]),
                         figure(s["max_rouge_l"]["mean"]), figure(s["verb_noun"]["coverage"]))
                        for key, name, s in groups]) + [""]
    return lines
