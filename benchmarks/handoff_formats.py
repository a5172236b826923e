"""Benchmark: memory and time of writing a bundle's formats, streamed against built in memory.

Usage (from the repository root):
    .venv/bin/python benchmarks/handoff_formats.py            # 10,000 and 100,000 rows
    .venv/bin/python benchmarks/handoff_formats.py --quick    # 2,000 and 20,000 rows

Rows are generated on the fly (instruction, input, a ~400-character output, provenance
with a lineage and scores), so the source itself holds no memory. For each size:

* baseline: what `export.write` did before the hand-off — the rows listed, the whole file
  rendered as one string, then written — for the four JSON formats, and for Parquet a
  `pyarrow.Table` of every row written at once;
* streamed: `app.core.handoff.formats` writers fed one row at a time, all five formats in
  one pass (`write_all`).

Peak memory: Python allocations (tracemalloc) and Arrow's memory pool (pyarrow's own
allocator, which tracemalloc does not see), each the peak over the write, in a traced run;
times are wall seconds of an untraced run (the streamed writers also fsync each file before
renaming it into place; the baseline does not); each run in a fresh process. The claim to check:
the streamed peak stays flat as the rows grow tenfold, the baseline grows with them.
"""

from __future__ import annotations

import argparse
import multiprocessing
import shutil
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import pyarrow as pa
import pyarrow.parquet as pq

from app.core import export
from app.core.handoff import formats


def rows(n: int):
    for i in range(n):
        yield {"id": i, "instruction": f"Explain step {i} of the procedure in plain words.", "input": "x" * (i % 40),
               "output": f"Answer {i}: " + "the quick brown fox jumps over the lazy dog " * 9, "method": "evol_instruct",
               "job_id": 7, "scores": {"max_rouge_l": 0.31, "mean_rouge_l": 0.12},
               "lineage": [{"instruction": f"Step {i}.", "operation": None, "round": 0},
                           {"instruction": f"Explain step {i}.", "operation": "deepening", "round": 1}]}


def baseline(n: int, out: Path) -> None:
    listed = list(rows(n))
    for fmt in export.FORMATS:
        text = export.render(listed, fmt)
        (out / formats.FILE_NAMES[fmt]).write_text(text, encoding="utf-8")
        del text
    table = pa.Table.from_pylist([export.to_record(r, "parquet") for r in listed], schema=formats.parquet_schema())
    (out / "data").mkdir()
    pq.write_table(table, out / "data" / "train-00000-of-00001.parquet", compression="zstd")


def streamed(n: int, out: Path) -> None:
    formats.write_all(rows(n), [formats.open_writer(f, out, rows_per_shard=10**9) for f in formats.FORMATS])


def _measure_here(name: str, n: int, trace: bool, results) -> None:
    fn = {"baseline": baseline, "streamed": streamed}[name]
    out = Path(tempfile.mkdtemp(prefix="sprout-bench-"))
    pool = pa.default_memory_pool()
    python_peak = 0
    try:
        if trace:
            tracemalloc.start()
        started = time.perf_counter()
        fn(n, out)
        seconds = time.perf_counter() - started
        if trace:
            python_peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
        size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    finally:
        shutil.rmtree(out, ignore_errors=True)
    results.put((python_peak / 2**20, (pool.max_memory() or 0) / 2**20, seconds, size))


def _in_fresh_process(name: str, n: int, trace: bool) -> tuple[float, float, float, int]:
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    process = context.Process(target=_measure_here, args=(name, n, trace, results))
    process.start()
    value = results.get()
    process.join()
    return value


def measure(name: str, n: int) -> tuple[float, float, float, int]:
    """(Python peak MiB, Arrow peak MiB, seconds, bytes written): the peaks from a traced run,
    the time from an untraced one, each in a fresh process (Arrow's pool reports a
    process-wide maximum, and tracing slows the writing down)."""
    python_peak, arrow_peak, _, size = _in_fresh_process(name, n, trace=True)
    seconds = _in_fresh_process(name, n, trace=False)[2]
    return python_peak, arrow_peak, seconds, size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2,000 and 20,000 rows")
    parser.add_argument("--sizes", default=None, help="comma-separated row counts")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")] if args.sizes else ([2_000, 20_000] if args.quick else [10_000, 100_000])
    print("| rows | files | baseline peak (Python + Arrow) | streamed peak (Python + Arrow) | ratio | baseline s | streamed s |")
    print("|---|---|---|---|---|---|---|")
    for n in sizes:
        b_py, b_arrow, b_sec, size = measure("baseline", n)
        s_py, s_arrow, s_sec, _ = measure("streamed", n)
        b_total, s_total = b_py + b_arrow, s_py + s_arrow
        print(f"| {n:,} | {size / 2**20:,.1f} MiB | {b_total:,.1f} MiB ({b_py:,.1f} + {b_arrow:,.1f}) | "
              f"{s_total:,.1f} MiB ({s_py:,.1f} + {s_arrow:,.1f}) | {b_total / max(s_total, 1e-9):,.1f}x | "
              f"{b_sec:,.1f} | {s_sec:,.1f} |")


if __name__ == "__main__":
    main()
