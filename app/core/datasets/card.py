"""The dataset card stored with each version: a short Markdown file with YAML front matter.

Written once, at commit, from the dataset and the version's own figures (its diversity report
by method, persona and topic among them, `counts["diversity"]`), so a download of any
version can ship the card that describes exactly that version.
"""

from __future__ import annotations

import json
from typing import Any

from app.core import diversity_card
from app.models import Dataset, DatasetVersion


def _size_category(n: int) -> str:
    for bound, name in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M")):
        if n < bound:
            return name
    return "n>1M"


def _table(counts: dict[str, Any]) -> list[str]:
    return [f"| {k} | {v} |" for k, v in sorted(counts.items())]


def render_card(dataset: Dataset, version: DatasetVersion) -> str:
    counts = version.counts or {}
    lines = [
        "---",
        f"license: {dataset.license or 'other'}",
        f"pretty_name: {json.dumps(dataset.name)}",
        "size_categories:",
        f"- {_size_category(version.row_count)}",
        "task_categories:",
        "- text-generation",
        "---",
        f"# {dataset.name}, version {version.number}",
        "",
    ]
    if dataset.description:
        lines += [dataset.description.strip(), ""]
    lines += [
        "| | |", "|---|---|",
        f"| version | {version.number} ({'first version' if version.number == 1 else f'after {version.number - 1}'}) |",
        f"| made by | {version.kind}{f' (job {version.build_job_id})' if version.build_job_id else ''} |",
        f"| created | {version.created_at.isoformat(timespec='seconds')} |",
        f"| examples | {version.row_count} |",
        f"| added, removed, corrected | {counts.get('added', 0)}, {counts.get('removed', 0)}, {counts.get('corrected', 0)} |",
        f"| content hash | sha256:{version.content_hash} |",
        "",
    ]
    if counts.get("by_method"):
        lines += ["## Examples by method", "", "| method | examples |", "|---|---|", *_table(counts["by_method"]), ""]
    rejected = (counts.get("build") or {}).get("rejected_by_rule")
    if rejected:
        lines += ["## Candidates this build rejected, by rule", "", "| rule | rejected |", "|---|---|",
                  *_table(rejected), ""]
    contamination = (counts.get("build") or {}).get("contamination")
    if contamination:  # the build's steps summed: what was kept out because it reproduced an evaluation item
        lines += ["## Contamination this build kept out", "",
                  f"{contamination.get('candidates_hit', 0)} candidate(s) reproduced a benchmark or evaluation item.",
                  "", "| benchmark | items hit | hits |", "|---|---|---|",
                  *[f"| {name} | {b['items_hit']} | {b['hits']} |"
                    for name, b in sorted((contamination.get("benchmarks") or {}).items())], ""]
    review = counts.get("review")
    if review:  # a committed review: what the reviewers decided, and why rows left
        lines += ["## Review", "",
                  f"{review.get('accepted', 0)} accepted, {review.get('rejected', 0)} rejected, "
                  f"{review.get('edited', 0)} edited, {review.get('rated', 0)} rated"
                  + (f" (mean rating {review['rating_mean']} of 5)" if review.get("rating_mean") is not None else "")
                  + f"; by {', '.join(review.get('reviewers') or []) or 'unknown'}"
                  + (f", {review['first_reviewed_at']} to {review['last_reviewed_at']}" if review.get("first_reviewed_at")
                     else "") + ".", ""]
        if review.get("reasons"):
            lines += ["| reason for rejecting | rows |", "|---|---|",
                      *[f"| {reason.replace('|', '/')} | {n} |" for reason, n in review["reasons"].items()], ""]
    if counts.get("diversity"):  # computed at commit over the version's instructions
        lines += diversity_card.section(counts["diversity"])
    lines += ["## Recipe", "", "```json", json.dumps(dataset.recipe, indent=2, sort_keys=True), "```", ""]
    return "\n".join(lines)
