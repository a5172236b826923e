"""Benchmark: dataset versions at 200K examples — commit cost, streamed export, novelty seeding.

Usage (from the repository root):
    .venv/bin/python benchmarks/dataset_versions.py                  # PostgreSQL: a fresh database, dropped after
    .venv/bin/python benchmarks/dataset_versions.py --database-url postgresql+psycopg://u:p@host/db
    .venv/bin/python benchmarks/dataset_versions.py --sqlite         # a temporary SQLite file instead
    .venv/bin/python benchmarks/dataset_versions.py --size 50000     # a smaller dataset

`--database-url` names a database the script may write to (it is migrated to the newest
revision, and the two datasets it makes are deleted at the end). Without it, a database is
created on the server of `SPROUT_TEST_PG_ADMIN_URL` (default: the local PostgreSQL).

Data (deterministic, `--seed`): examples whose instruction (8-20 words), input (none or
5-20 words) and output (20-60 words) are drawn from a vocabulary of 20,000 made-up words,
with a lineage and two scores each, like a build's rows. The text is ASCII, so every
row's lineage takes the export's fast path (its stored JSON text is used as is); a row
whose lineage holds non-ASCII text is decoded and encoded again, which costs more.

Figures, each against a baseline measured in this run:

1. Commit cost. Median time of `commit_version` (+ the transaction commit) adding `--add`
   examples to a dataset of `--add` examples (baseline) and to one of `--size` examples,
   the two interleaved so that both see the same machine load, each timed version deleted
   again so every commit starts from the same size; the ratio is the figure (1.0 =
   independent of the dataset's size). Shown next to it:
   what one full recomputation of the content hash costs at `--size` (a commit that
   rehashed every row would pay at least that), and a removal of `--add` scattered rows,
   which rehashes the segments it touches (documented cost: O(rows of those segments)).
2. Streamed export of the latest version (`--size` rows) in the messages format, in a
   fresh child process: rows/s and the child's peak RSS, against the same rows read in one
   query into a list and rendered at once by `app.core.export.render` (how a job's export
   is written), also in a fresh child; and the stream of a version of a fifth of the rows,
   whose peak RSS against the full version's shows memory against rows (1.0 = constant).
   Targets: >= 50K rows/s, peak < 500 MB. Then a diff of the first version and the latest:
   its counts, and its added rows streamed, in a fresh child, with its peak RSS.
3. Seeding a build's novelty index (`NoveltyIndex`) from the dataset's `--size`
   instructions streamed out of the database (`seeding.novelty_texts`), against filling
   it from the same texts already in memory. Target: < 10 s.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import create_engine, text
from sqlmodel import Session

from app import db
from app.core import export as job_export
from app.core.datasets import deletion, seeding
from app.core.datasets import versions as v
from app.core.datasets.curation import remove_examples
from app.core.datasets.export import export_chunks
from app.core.datasets.recipe import parse_recipe
from app.core.filters.novelty import NoveltyIndex
from app.core.seeds import SeedTaskData
from app.core.store import import_seed_set
from app.models import Dataset

PG_ADMIN_URL = os.environ.get("SPROUT_TEST_PG_ADMIN_URL", "postgresql+psycopg://postgres:postgres@127.0.0.1:5432/postgres")
FILL_CHUNK = 20_000
OWNER = "benchmark"


# --- data ------------------------------------------------------------------------------------
def vocabulary(rng: random.Random, n: int = 20_000) -> list[str]:
    syllables = [c + v_ for c in "bcdfghjklmnprstvwz" for v_ in ("a", "e", "i", "o", "u", "ai", "ou")]
    words: set[str] = set()
    while len(words) < n:
        words.add("".join(rng.choice(syllables) for _ in range(rng.randint(1, 4))))
    return sorted(words)


class Corpus:
    def __init__(self, seed: int):
        self.rng = random.Random(seed)
        self.words = vocabulary(self.rng)

    def _text(self, lo: int, hi: int) -> str:
        return " ".join(self.rng.choices(self.words, k=self.rng.randint(lo, hi)))

    def examples(self, n: int) -> list[v.NewExample]:
        out = []
        for _ in range(n):
            instruction = self._text(8, 20).capitalize() + "."
            out.append(v.NewExample(
                instruction=instruction,
                input="" if self.rng.random() < 0.4 else self._text(5, 20),
                output=self._text(20, 60).capitalize() + ".",
                method="self_instruct",
                lineage=[{"instruction": instruction, "operation": None, "round": 0}],
                scores={"max_rouge_l": round(self.rng.random() * 0.7, 4), "mean_rouge_l": round(self.rng.random() * 0.2, 4)},
            ))
        return out


# --- databases -------------------------------------------------------------------------------
def fresh_postgres() -> tuple[str, Callable[[], None]]:
    name = f"sprout_bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"

    def drop() -> None:
        db.dispose_engines()
        with admin.connect() as conn:
            conn.execute(text(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'"))
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        admin.dispose()

    return url, drop


def new_dataset(s: Session, name: str) -> Dataset:
    seed_id = import_seed_set(s, name, "jsonl", [SeedTaskData("Describe a benchmark in one sentence.")], owner=OWNER).id
    recipe = parse_recipe({"seed_set_ids": [seed_id], "steps": [{"kind": "self_instruct"}], "grow_by": 1000})
    ds = v.create_dataset(s, OWNER, name, recipe)
    s.commit()
    return ds


def timed_commit(s: Session, ds: Dataset, rows: list[v.NewExample]) -> float:
    start = time.perf_counter()
    v.commit_version(s, ds, rows)
    s.commit()
    return time.perf_counter() - start


# --- child processes (fresh interpreters, so their peak RSS is their own) ----------------------
def peak_rss_mb() -> float:
    """This process's peak resident memory. /proc's VmHWM starts afresh at exec, while
    getrusage's ru_maxrss keeps the parent's peak across fork and exec on Linux."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child_export(url: str, dataset_id: int, number: int, mode: str) -> None:
    rss_start = peak_rss_mb()
    start, cpu_start = time.perf_counter(), time.process_time()
    rows = size = 0
    with Session(db.get_engine(url)) as s, open(os.devnull, "w", encoding="utf-8") as sink:
        if mode == "stream":
            for chunk in export_chunks(s, dataset_id, number, "messages"):
                size += len(chunk)
                rows += chunk.count("\n")
                sink.write(chunk)
        else:  # baseline: every row in one list, rendered at once
            fields = ("instruction", "input", "output", "method", "lineage")
            all_rows = list(v.version_rows(s, dataset_id, number, page_size=10**9, fields=fields))
            out = job_export.render(all_rows, "messages")
            rows, size = len(all_rows), len(out)
            sink.write(out)
    print(json.dumps({"rows": rows, "chars": size, "seconds": time.perf_counter() - start,
                      "cpu_seconds": time.process_time() - cpu_start, "peak_mb": peak_rss_mb(),
                      "start_mb": rss_start}))


def child_diff(url: str, dataset_id: int, a: int, b: int) -> None:
    """The counts of the diff from version a to b, then its added rows streamed (and dropped)."""
    from app.core.datasets import diff as version_diff

    rss_start = peak_rss_mb()
    start = time.perf_counter()
    with Session(db.get_engine(url)) as s:
        counts = version_diff.diff_numbers(s, dataset_id, a, b)
        counted_s = time.perf_counter() - start
        rows = sum(1 for _ in version_diff.diff_rows(s, v.get_version(s, dataset_id, a),
                                                     v.get_version(s, dataset_id, b), "added"))
    print(json.dumps({"rows": rows, "added": counts.added, "counts_seconds": counted_s,
                      "seconds": time.perf_counter() - start, "peak_mb": peak_rss_mb(), "start_mb": rss_start}))


def run_child(args: list[str]) -> dict:
    out = subprocess.run([sys.executable, __file__, *args], check=True, capture_output=True, text=True, cwd=ROOT)
    return json.loads(out.stdout.strip().splitlines()[-1])


# --- the benchmark ---------------------------------------------------------------------------
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--database-url", help="a database to write to (default: a fresh PostgreSQL database)")
    ap.add_argument("--sqlite", action="store_true", help="use a temporary SQLite file")
    ap.add_argument("--size", type=int, default=200_000, help="examples in the large dataset")
    ap.add_argument("--add", type=int, default=1_000, help="examples a timed commit adds")
    ap.add_argument("--repeats", type=int, default=5, help="timed commits per size (median)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--child-export", nargs=4, metavar=("URL", "DATASET", "VERSION", "MODE"), help=argparse.SUPPRESS)
    ap.add_argument("--list-max", type=int, default=300_000,
                    help="rows the list baseline renders at most (past it: the version of a fifth of the rows)")
    ap.add_argument("--child-diff", nargs=4, metavar=("URL", "DATASET", "A", "B"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child_export:
        url, ds_id, number, mode = args.child_export
        child_export(url, int(ds_id), int(number), mode)
        return
    if args.child_diff:
        url, ds_id, a, b = args.child_diff
        child_diff(url, int(ds_id), int(a), int(b))
        return

    cleanup = None
    tmpdir = None
    if args.sqlite:
        tmpdir = tempfile.TemporaryDirectory(prefix="sprout-bench-")
        url = f"sqlite:///{tmpdir.name}/bench.db"
    elif args.database_url:
        url = args.database_url
    else:
        url, cleanup = fresh_postgres()
    db.upgrade(url)
    engine = db.get_engine(url)
    print(f"dataset versions benchmark: {engine.dialect.name}, {args.size:,} examples, commits of {args.add:,}, "
          f"median of {args.repeats}; {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
    corpus = Corpus(args.seed)
    tag = uuid.uuid4().hex[:6]
    try:
        with Session(engine, expire_on_commit=False) as s:
            # 1. commit cost --------------------------------------------------------------------
            small = new_dataset(s, f"bench-small-{tag}")
            timed_commit(s, small, corpus.examples(args.add))
            big = new_dataset(s, f"bench-large-{tag}")
            start = time.perf_counter()
            left = args.size
            while left > 0:
                n = min(FILL_CHUNK, left)
                timed_commit(s, big, corpus.examples(n))
                left -= n
            fill_s = time.perf_counter() - start
            if engine.dialect.name == "postgresql":  # fresh statistics, as autovacuum would soon give
                with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                    conn.execute(text("ANALYZE dataset_examples"))
            # Interleaved, so both sizes see the same machine load; each timed version is then
            # deleted (untimed), so every commit starts from the same size.
            times: dict[str, list[float]] = {"small": [], "big": []}
            for i in range(args.repeats + 1):  # the first round warms up
                for key in (("small", "big") if i % 2 else ("big", "small")):
                    ds = small if key == "small" else big
                    t = timed_commit(s, ds, corpus.examples(args.add))
                    deletion.delete_version(s, ds, v.latest_number(s, ds.id))
                    s.commit()
                    if i:
                        times[key].append(t)
            small_times, big_times = times["small"], times["big"]
            latest = v.latest_version(s, big.id)
            start = time.perf_counter()
            full_hash = v.content_hash(s, big.id, latest.number)
            rehash_s = time.perf_counter() - start
            assert full_hash == latest.content_hash, "stored and recomputed hashes differ"
            rng = random.Random(args.seed)
            ids = [r["id"] for r in v.version_rows(s, big.id, latest.number, fields=("id",))]
            start = time.perf_counter()
            removal = remove_examples(s, big, example_ids=rng.sample(ids, args.add))
            s.commit()
            removal_s = time.perf_counter() - start
            removed = removal.counts["removed"]
            deletion.delete_version(s, big, removal.number)  # back to the --size rows
            s.commit()
            rows_big, number, big_id = latest.row_count, latest.number, big.id

            small_med, big_med = statistics.median(small_times), statistics.median(big_times)
            print(f"\n  1. commit of a version adding {args.add:,} examples (median of {args.repeats}, the sizes "
                  "interleaved; insert rows, hash segment, version, tag):")
            print(f"     baseline, dataset of {args.add:,} examples:   {small_med * 1000:8.1f} ms")
            print(f"     dataset of {args.size:,} examples:          {big_med * 1000:8.1f} ms   "
                  f"ratio {big_med / small_med:.2f} (1.00 = independent of the dataset's size)")
            print(f"     for scale: full content-hash recomputation at {args.size:,}: {rehash_s * 1000:,.0f} ms "
                  f"({rehash_s / big_med:.0f}x the commit); filling {args.size:,} took {fill_s:.1f} s")
            print(f"     removal of {removed:,} scattered examples (rehashes the segments it touches): "
                  f"{removal_s * 1000:,.0f} ms")

            # 3. novelty seeding (before the export children, in this process) ---------------------
            ds = s.get(Dataset, big_id)
            start = time.perf_counter()
            texts_from_db = list(seeding.novelty_texts(s, ds))
            read_s = time.perf_counter() - start
            start, cpu = time.perf_counter(), time.process_time()
            index = NoveltyIndex()
            seeding.fill_novelty_index(index, seeding.novelty_texts(s, ds))
            seed_db_s, seed_db_cpu = time.perf_counter() - start, time.process_time() - cpu
            start, cpu = time.perf_counter(), time.process_time()
            index2 = NoveltyIndex()
            seeding.fill_novelty_index(index2, texts_from_db)
            seed_mem_s, seed_mem_cpu = time.perf_counter() - start, time.process_time() - cpu
            n_texts = len(texts_from_db)
            assert len(index) == len(index2) == n_texts
            del index, index2, texts_from_db  # before the export children start

        # 2. streamed export in fresh processes ----------------------------------------------------
        db.dispose_engines()
        stream = run_child(["--child-export", url, str(big_id), str(number), "stream"])
        fifth = max(1, number // 5)  # a version of about a fifth of the rows: memory against rows
        stream_fifth = run_child(["--child-export", url, str(big_id), str(fifth), "stream"])
        diffed = run_child(["--child-diff", url, str(big_id), "1", str(number)])
        assert diffed["rows"] == diffed["added"] == rows_big - FILL_CHUNK, diffed
        # The list baseline holds every row: past --list-max rows it renders the fifth instead.
        listed = number if rows_big <= args.list_max else fifth
        base = run_child(["--child-export", url, str(big_id), str(listed), "list"])
        same = stream if listed == number else stream_fifth
        assert same["rows"] == base["rows"] and same["chars"] == base["chars"] and stream["rows"] == rows_big
        rate, base_rate = stream["rows"] / stream["seconds"], base["rows"] / base["seconds"]
        print(f"\n  2. export of version {number} ({rows_big:,} rows, messages JSONL, "
              f"{stream['chars'] / 1e6:,.0f} M characters), each in a fresh process "
              "(rows/s of wall time; in brackets, of the exporting process's own CPU time):")
        print(f"     baseline, one list rendered at once{'' if listed == number else f' (version {listed})'}:  {base_rate:>9,.0f} rows/s "
              f"({base['rows'] / base['cpu_seconds']:>7,.0f})   peak RSS {base['peak_mb']:6.0f} MB")
        print(f"     streamed (keyset pages):              {rate:>9,.0f} rows/s "
              f"({stream['rows'] / stream['cpu_seconds']:>7,.0f})   peak RSS {stream['peak_mb']:6.0f} MB "
              f"(after imports, before the export: {stream['start_mb']:.0f} MB)")
        print(f"     streamed, version {fifth} ({stream_fifth['rows']:,} rows):  "
              f"{stream_fifth['rows'] / stream_fifth['seconds']:>9,.0f} rows/s            "
              f"peak RSS {stream_fifth['peak_mb']:6.0f} MB (memory against rows: "
              f"{stream['peak_mb'] / stream_fifth['peak_mb']:.2f}x for {stream['rows'] / stream_fifth['rows']:.1f}x the rows)")
        print(f"     targets: >= 50,000 rows/s {'met' if rate >= 50_000 else 'NOT met'}; "
              f"peak < 500 MB {'met' if stream['peak_mb'] < 500 else 'NOT met'}")
        print(f"\n  2b. diff of version 1 and version {number} in a fresh process: counts in "
              f"{diffed['counts_seconds'] * 1000:,.0f} ms; its {diffed['rows']:,} added rows streamed in "
              f"{diffed['seconds']:.1f} s ({diffed['rows'] / diffed['seconds']:,.0f} rows/s), "
              f"peak RSS {diffed['peak_mb']:.0f} MB")

        print(f"\n  3. seeding a build's novelty index with {n_texts:,} instructions (seeds + live examples; "
              "in brackets, this process's CPU time):")
        print(f"     baseline, from a list in memory:      {seed_mem_s:6.2f} s ({seed_mem_cpu:.2f} s)")
        print(f"     streamed from the database:           {seed_db_s:6.2f} s ({seed_db_cpu:.2f} s)   "
              f"reading alone {read_s:.2f} s; {seed_db_s / seed_mem_s:.2f}x the in-memory fill")
        print(f"     target: < 10 s {'met' if seed_db_s < 10 else 'NOT met'}")
        print(f"\n  load average at the end: {os.getloadavg()[0]:.1f} (figures on a busy machine are slower than on a quiet one)")
    finally:
        if cleanup is not None:
            cleanup()
        elif args.database_url:
            with db.get_engine(url).begin() as conn:  # the rows cascade from their dataset and seed set
                for name in (f"bench-small-{tag}", f"bench-large-{tag}"):
                    conn.execute(text("DELETE FROM datasets WHERE owner = :o AND name = :n"), {"o": OWNER, "n": name})
                    conn.execute(text("DELETE FROM seed_sets WHERE owner = :o AND name = :n"), {"o": OWNER, "n": name})
        if tmpdir is not None:
            db.dispose_engines()
            tmpdir.cleanup()


if __name__ == "__main__":
    main()
