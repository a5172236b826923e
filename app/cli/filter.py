"""`sprout filter ...`: the novelty and near-duplicate filters on any dataset.

Both commands read their whole input and check it before doing any work, and write each
output to a temporary file renamed into place at the end, so a bad input or an
interrupted run never leaves a half-written output behind.
"""

from __future__ import annotations

import json
import os
import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import typer

from app.cli.common import CliError, console

app = typer.Typer(help="Run Sprout's filters on any dataset.", no_args_is_help=True)


# --- reading -------------------------------------------------------------------------------
def _read_text(path: Path) -> str:
    if not path.exists():
        raise CliError(f"{path}: no such file")
    if not path.is_file():
        raise CliError(f"{path}: not a file")
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise CliError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    except OSError as exc:
        raise CliError(f"{path}: cannot read ({exc.strerror})") from None


def _read_records(path: Path, allow_plain: bool) -> tuple[str, list[tuple[int, Any]]]:
    """("line" | "item", [(position, record)]) from JSONL, a JSON list or plain text.

    The format is the extension's (.jsonl, .json, .txt) or else sniffed from the first
    character: `[` a JSON list, `{` JSONL, anything else plain text (one record a line)
    where `allow_plain`, else an error. Blank lines are skipped.
    """
    text = _read_text(path)
    stripped = text.lstrip()
    if not stripped:
        raise CliError(f"{path}: the file is empty")
    suffix = path.suffix.lower()
    if suffix == ".json" or (suffix not in (".jsonl", ".txt") and stripped.startswith("[")):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise CliError(f"{path} line {exc.lineno}: not valid JSON ({exc.msg})") from None
        if not isinstance(data, list):
            raise CliError(f"{path}: expected a JSON list of objects, got a JSON {type(data).__name__}")
        if not data:
            raise CliError(f"{path}: the JSON list is empty")
        return "item", list(enumerate(data, start=1))
    lines = [(n, line) for n, line in enumerate(text.splitlines(), start=1) if line.strip()]
    if suffix == ".txt" or (suffix != ".jsonl" and not stripped.startswith("{")):
        if not allow_plain:
            raise CliError(f"{path}: expected JSONL or a JSON list, not plain text")
        return "line", [(n, line.strip()) for n, line in lines]
    records = []
    for n, line in lines:
        try:
            records.append((n, json.loads(line)))
        except json.JSONDecodeError as exc:
            raise CliError(f"{path} line {n}: not valid JSON ({exc.msg})") from None
    return "line", records


def _field(path: Path, where: str, pos: int, record: Any, name: str, required: bool, what: str = "a JSON object") -> str:
    if not isinstance(record, dict):
        raise CliError(f"{path} {where} {pos}: expected {what}, got {type(record).__name__}")
    if name not in record:
        if required:
            raise CliError(f"{path} {where} {pos}: missing field '{name}'")
        return ""
    value = record[name]
    if not isinstance(value, str):
        raise CliError(f"{path} {where} {pos}: field '{name}' must be a string, got {type(value).__name__}")
    return value


def _read_instructions(path: Path) -> list[str]:
    """Instructions: objects' `instruction` fields, JSON strings, or lines of plain text."""
    where, records = _read_records(path, allow_plain=True)
    what = "a JSON object or string"
    return [r if isinstance(r, str) else _field(path, where, pos, r, "instruction", True, what) for pos, r in records]


# --- writing -------------------------------------------------------------------------------
def _write_atomic(path: Path, write: Callable[[IO[str]], None]) -> None:
    """Write via a temporary file in the same directory, renamed into place when done."""
    directory = path.parent if str(path.parent) else Path(".")
    if not directory.is_dir():
        raise CliError(f"{path}: directory {directory} does not exist")
    try:
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise CliError(f"{path}: cannot write ({exc.strerror})") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            write(fh)
        os.replace(tmp, path)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise CliError(f"{path}: cannot write ({exc.strerror})") from None
        raise


def _check_threshold(value: float) -> None:
    if not 0.0 < value <= 1.0:
        raise CliError(f"--threshold must be in (0, 1], got {value}")


# --- novelty -------------------------------------------------------------------------------
@app.command("novelty")
def novelty(
    pool: Path = typer.Option(..., "--pool", help="Instructions already in the pool: JSONL with 'instruction', a JSON list, or plain text (one a line)."),
    candidates: Path = typer.Option(..., "--candidates", help="Instructions to check, in order; same formats as --pool."),
    out: Path = typer.Option(..., "--out", help="JSONL, one line per candidate in input order."),
    threshold: float = typer.Option(0.7, "--threshold", help="Reject a candidate whose ROUGE-L F against any pool entry is above this."),
    top_k: int = typer.Option(10, "--top-k", help="How many most similar pool entries to list per candidate."),
) -> None:
    """ROUGE-L novelty (Self-Instruct's rule): check candidates against a pool.

    Each candidate is compared with the pool plus the candidates accepted before it, and
    is rejected when its ROUGE-L F-measure (rouge-score, no stemmer) against any of
    them is above --threshold. Output lines: {"text", "accepted", "max_rouge_l",
    "most_similar": [{"text", "rouge_l"}]}.
    """
    from app.core.filters.novelty import NoveltyIndex

    _check_threshold(threshold)
    if top_k < 0:
        raise CliError(f"--top-k must be at least 0, got {top_k}")
    pool_texts = _read_instructions(pool)
    texts = _read_instructions(candidates)
    index = NoveltyIndex(threshold=threshold, top_k=top_k, mean_sample=0)
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
    where, records = _read_records(input, allow_plain=False)
    texts = []
    for pos, record in records:
        instruction = _field(input, where, pos, record, "instruction", True)
        inp = _field(input, where, pos, record, "input", False)
        output = _field(input, where, pos, record, "output", False)
        texts.append(example_text(instruction, inp, output))
    temporary = bool(redis_url) and not namespace
    ns = namespace or f"sprout:dedup:cli:{uuid.uuid4().hex}"
    keys = [f"{input.name}:{pos}" for pos, _ in records]
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
    kept = [record for (_, record), match in zip(records, matches) if match is None]
    clusters: dict[str, list[dict[str, Any]]] = {}
    for (pos, record), match in zip(records, matches):
        if match is not None:
            clusters.setdefault(match.key, []).append(
                {where: pos, "instruction": record["instruction"], "exact": match.exact, "jaccard": round(match.jaccard, 6)}
            )

    def head(key: str) -> dict[str, Any]:
        if key in position:
            pos, record = records[position[key]]
            return {where: pos, "instruction": record["instruction"]}
        return {"key": key}  # kept by an earlier run of a persistent --namespace

    def write_out(fh: IO[str]) -> None:
        if where == "item":
            json.dump(kept, fh, ensure_ascii=False, indent=2)
            fh.write("\n")
        else:
            for record in kept:
                fh.write(json.dumps(record, ensure_ascii=False) + "\n")

    removed = len(records) - len(kept)
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
                "documents": len(records),
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
        f"{len(records)} examples: kept {len(kept)}, removed {removed} "
        f"({exact} exact, {removed - exact} near-duplicates in {len(clusters)} clusters) -> {out}",
        highlight=False,
        markup=False,
        soft_wrap=True,
    )
