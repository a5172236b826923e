"""`sprout filter ...`: the novelty, near-duplicate and decontamination filters on any dataset.

Both commands read their whole input and check it before doing any work, and write each
output to a temporary file renamed into place at the end, so a bad input or an
interrupted run never leaves a half-written output behind.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import typer

from app.cli.common import CliError, console
from app.cli.params_options import params_options
from app.core import records
from app.core.params import DecontaminationParams, SelfInstructParams
from app.core.records import RecordError

app = typer.Typer(help="Run Sprout's filters on any dataset.", no_args_is_help=True)


# --- reading -------------------------------------------------------------------------------
def _read_records(path: Path, allow_plain: bool) -> tuple[str, list[tuple[int, Any, str]]]:
    """("line" | "item", [(position, record, where)]) from JSONL, a JSON list or plain text,
    read by `app/core/records.py` (line numbers, JSON limits, byte-order mark).

    The format is the extension's (.jsonl, .json, .txt) or else sniffed from the first
    character: `[` a JSON list, `{` JSONL, anything else plain text (one record a line)
    where `allow_plain`, else an error. Blank lines are skipped.
    """
    try:
        text = records.read_text(path)
        stripped = text.lstrip()
        if not stripped:
            raise CliError(f"{path}: the file is empty")
        suffix = path.suffix.lower()
        if suffix == ".json" or (suffix not in (".jsonl", ".txt") and stripped.startswith("[")):
            items = records.json_list_items(text)
            if not items:
                raise CliError(f"{path}: the JSON list is empty")
            return "item", [(item.number, item.value, item.where) for item in items]
        if suffix == ".txt" or (suffix != ".jsonl" and not stripped.startswith("{")):
            if not allow_plain:
                raise CliError(f"{path}: expected JSONL or a JSON list, not plain text")
            return "line", [(n, line.strip(), f"line {n}") for n, line in records.lines(text)]
        return "line", [(item.line, item.value, item.where) for item in records.jsonl_items(text)]
    except RecordError as exc:
        raise CliError(f"{path} {exc}" if str(exc).startswith("line ") else str(exc)) from None


def _field(path: Path, where: str, record: Any, name: str, required: bool, what: str = "a JSON object") -> str:
    if not isinstance(record, dict):
        raise CliError(f"{path} {where}: expected {what}, got {type(record).__name__}")
    try:
        return records.string_field(record, name, required)
    except RecordError as exc:
        raise CliError(f"{path} {where}: {exc}") from None


def _read_instructions(path: Path) -> list[str]:
    """Instructions: objects' `instruction` fields, JSON strings, or lines of plain text."""
    _, items = _read_records(path, allow_plain=True)
    what = "a JSON object or string"
    return [r if isinstance(r, str) else _field(path, where, r, "instruction", True, what) for _, r, where in items]


# --- writing -------------------------------------------------------------------------------
def _write_atomic(path: Path, write: Callable[[IO[str]], None]) -> None:
    """`records.write_atomic`, with its errors as one line."""
    directory = path.parent if str(path.parent) else Path(".")
    if not directory.is_dir():
        raise CliError(f"{path}: directory {directory} does not exist")
    try:
        records.write_atomic(path, write)
    except OSError as exc:
        raise CliError(f"{path}: cannot write ({exc.strerror})") from None


def _check_threshold(value: float) -> None:
    if not 0.0 < value <= 1.0:
        raise CliError(f"--threshold must be in (0, 1], got {value}")


# --- novelty -------------------------------------------------------------------------------
@app.command("novelty")
@params_options(SelfInstructParams, into="params", build=True, only=["rouge_l_threshold", "similar_top_k"],
                names={"rouge_l_threshold": ["--threshold"], "similar_top_k": ["--top-k"]})
def novelty(
    pool: Path = typer.Option(..., "--pool", help="Instructions already in the pool: JSONL with 'instruction', a JSON list, or plain text (one a line)."),
    candidates: Path = typer.Option(..., "--candidates", help="Instructions to check, in order; same formats as --pool."),
    out: Path = typer.Option(..., "--out", help="JSONL, one line per candidate in input order."),
    params: SelfInstructParams | None = None,
) -> None:
    """ROUGE-L novelty (Self-Instruct's rule): check candidates against a pool.

    Each candidate is compared with the pool plus the candidates accepted before it, and
    is rejected when its ROUGE-L F-measure (rouge-score, no stemmer) against any of
    them is above --threshold. Output lines: {"text", "accepted", "max_rouge_l",
    "most_similar": [{"text", "rouge_l"}]}.
    """
    from app.core.filters.novelty import NoveltyIndex

    assert params is not None  # set from the options
    threshold, top_k = params.rouge_l_threshold, params.similar_top_k
    pool_texts = _read_instructions(pool)
    texts = _read_instructions(candidates)
    index = NoveltyIndex(threshold=threshold, top_k=top_k, mean_sample=0, exact_below_threshold=True)
    for text in pool_texts:
        index.add(text)
    rows = []
    for text in texts:
        result = index.check(text)
        if result.novel:
            index.add(text)
        rows.append(
            {
                "text": text,
                "accepted": result.novel,
                "max_rouge_l": result.max_rouge_l,
                "most_similar": [{"text": t, "rouge_l": s} for t, s in result.most_similar],
            }
        )

    def write(fh: IO[str]) -> None:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")

    _write_atomic(out, write)
    accepted = sum(r["accepted"] for r in rows)
    console.print(
        f"{len(rows)} candidates against a pool of {len(pool_texts)}: {accepted} accepted, "
        f"{len(rows) - accepted} rejected (ROUGE-L > {threshold:g}) -> {out}",
        highlight=False,
        markup=False,
        soft_wrap=True,
    )


# --- dedup ---------------------------------------------------------------------------------
@app.command("dedup")
def dedup(
    input: Path = typer.Option(..., "--input", help="Examples: JSONL rows or a JSON list (Alpaca) with 'instruction' and optional 'input', 'output'."),
    out: Path = typer.Option(..., "--out", help="The kept examples, in the input's format and order."),
    threshold: float = typer.Option(0.9, "--threshold", help="Jaccard similarity of word 3-gram sets at or above which two examples are near-duplicates."),
    num_perm: int = typer.Option(128, "--num-perm", help="MinHash permutations."),
    redis_url: str | None = typer.Option(None, "--redis-url", help="Keep the LSH index in this Redis (shared with workers) instead of memory."),
    namespace: str | None = typer.Option(None, "--namespace", help="With --redis-url: a persistent index to check against and add to (default: a temporary one)."),
    report: Path | None = typer.Option(None, "--report", help="JSON report of the near-duplicate clusters."),
) -> None:
    """Remove exact and near-duplicate examples (MinHash LSH), keeping the first of each cluster."""
    from app.core.filters.dedup import DedupError, NearDupIndex, example_text

    _check_threshold(threshold)
    if num_perm < 16:
        raise CliError(f"--num-perm must be at least 16, got {num_perm}")
    where, items = _read_records(input, allow_plain=False)
    rows = [(pos, record) for pos, record, _ in items]
    texts = []
    for _, record, at in items:
        instruction = _field(input, at, record, "instruction", True)
        inp = _field(input, at, record, "input", False)
        output = _field(input, at, record, "output", False)
        texts.append(example_text(instruction, inp, output))
    temporary = bool(redis_url) and not namespace
    ns = namespace or f"sprout:dedup:cli:{uuid.uuid4().hex}"
    keys = [f"{input.name}:{pos}" for pos, _ in rows]
    try:
        index = NearDupIndex(threshold=threshold, num_perm=num_perm, redis_url=redis_url, namespace=ns)
        try:
            matches = index.match_and_add_many(zip(keys, texts))
        finally:
            if temporary:
                index.clear()
    except DedupError as exc:
        raise CliError(str(exc)) from None

    position = {key: i for i, key in enumerate(keys)}
    kept = [record for (_, record), match in zip(rows, matches) if match is None]
    clusters: dict[str, list[dict[str, Any]]] = {}
    for (pos, record), match in zip(rows, matches):
        if match is not None:
            clusters.setdefault(match.key, []).append(
                {where: pos, "instruction": record["instruction"], "exact": match.exact, "jaccard": round(match.jaccard, 6)}
            )

    def head(key: str) -> dict[str, Any]:
        if key in position:
            pos, record = rows[position[key]]
            return {where: pos, "instruction": record["instruction"]}
        return {"key": key}  # kept by an earlier run of a persistent --namespace

    def write_out(fh: IO[str]) -> None:
        if where == "item":
            json.dump(kept, fh, ensure_ascii=False, indent=2)
            fh.write("\n")
        else:
            for record in kept:
                fh.write(json.dumps(record, ensure_ascii=False) + "\n")

    removed = len(rows) - len(kept)
    exact = sum(1 for m in matches if m is not None and m.exact)

    def write_report(fh: IO[str]) -> None:
        json.dump(
            {
                "input": str(input),
                "threshold": threshold,
                "num_perm": num_perm,
                "shingle": "word 3-grams",
                "lsh_bands": index.bands,
                "lsh_rows": index.rows,
                "documents": len(rows),
                "kept": len(kept),
                "removed": removed,
                "exact_duplicates": exact,
                "near_duplicates": removed - exact,
                "clusters": [{"kept": head(key), "duplicates": dups} for key, dups in clusters.items()],
            },
            fh,
            ensure_ascii=False,
            indent=2,
        )
        fh.write("\n")

    _write_atomic(out, write_out)
    if report is not None:
        _write_atomic(report, write_report)
    console.print(
        f"{len(rows)} examples: kept {len(kept)}, removed {removed} "
        f"({exact} exact, {removed - exact} near-duplicates in {len(clusters)} clusters) -> {out}",
        highlight=False,
        markup=False,
        soft_wrap=True,
    )


# --- decontaminate ---------------------------------------------------------------------------
@app.command("decontaminate")
@params_options(DecontaminationParams, into="params", build=True,
                only=["decontaminate_n", "decontaminate_threshold", "decontaminate_fields", "decontaminate_strict"],
                names={"decontaminate_n": ["--n"], "decontaminate_threshold": ["--threshold"],
                       "decontaminate_fields": ["--field"], "decontaminate_strict": ["--strict"]})
def decontaminate(
    benchmark: list[Path] = typer.Option(..., "--benchmark", help="A benchmark file (repeatable): any seed format (Self-Instruct JSONL, Alpaca JSON, CSV), or JSONL with --prompt-field / --output-field."),
    input: Path = typer.Option(..., "--input", help="Examples: JSONL rows or a JSON list (Alpaca) with 'instruction' and optional 'input', 'output'."),
    out: Path = typer.Option(..., "--out", help="The clean examples, in the input's format and order."),
    report: Path | None = typer.Option(None, "--report", help="JSON report: each contaminated example with the benchmark item hit, and items hit by benchmark."),
    prompt_fields: list[str] = typer.Option([], "--prompt-field", help="JSONL benchmarks: field(s) joined as an item's prompt (repeatable)."),
    output_field: str | None = typer.Option(None, "--output-field", help="JSONL benchmarks: the field holding an item's output."),
    params: DecontaminationParams | None = None,
) -> None:
    """Remove examples that reproduce a benchmark item (open-instruct's 8-gram rule, or exact match)."""
    from app.core.benchmark_sets import parse_benchmark
    from app.core.filters.decontaminate import DecontaminationIndex, prompt_text
    from app.core.filters.decontaminate import report as summarize

    assert params is not None  # set from the options
    n, threshold, fields = params.decontaminate_n, params.decontaminate_threshold, params.decontaminate_fields
    strict = params.decontaminate_strict
    try:
        index = DecontaminationIndex(n=n, threshold=threshold, fields=fields, strict=strict,
                                      short_exact=("prompt",))  # as jobs do: a short answer is no evidence
    except ValueError as exc:
        raise CliError(f"--field: {exc}") from None
    for path in benchmark:
        try:
            _, items = parse_benchmark(records.read_text(path), path.name, filename=path.name,
                                       prompt_fields=prompt_fields, output_field=output_field)
        except RecordError as exc:
            message = str(exc)
            raise CliError(message if message.startswith(str(path)) else f"{path} {message}" if message.startswith("line ")
                           else f"{path}: {message}") from None
        index.add_many(items)
    where, items = _read_records(input, allow_plain=False)
    examples = []
    for pos, record, at in items:
        instruction = _field(input, at, record, "instruction", True)
        examples.append((pos, record, prompt_text(instruction, _field(input, at, record, "input", False)),
                         _field(input, at, record, "output", False)))
    kept, hits = [], []
    for pos, record, prompt, output in examples:
        hit = index.check(prompt, output)
        if hit is None:
            kept.append(record)
        else:
            hits.append({where: pos, "instruction": record["instruction"], "contamination": [hit.as_dict()]})

    def write_out(fh: IO[str]) -> None:
        if where == "item":
            json.dump(kept, fh, ensure_ascii=False, indent=2)
            fh.write("\n")
        else:
            for record in kept:
                fh.write(json.dumps(record, ensure_ascii=False) + "\n")

    def write_report(fh: IO[str]) -> None:
        json.dump({"input": str(input), "benchmarks": [str(p) for p in benchmark], "benchmark_items": len(index),
                   "n": n, "threshold": threshold, "fields": list(index.fields), "strict": strict,
                   "examples": len(examples), "kept": len(kept), "removed": len(hits),
                   "summary": summarize(h for h in hits), "contaminated": hits}, fh, ensure_ascii=False, indent=2)
        fh.write("\n")

    _write_atomic(out, write_out)
    if report is not None:
        _write_atomic(report, write_report)
    console.print(
        f"{len(examples)} examples against {len(index)} benchmark items: kept {len(kept)}, "
        f"removed {len(hits)} as contaminated -> {out}",
        highlight=False,
        markup=False,
        soft_wrap=True,
    )
