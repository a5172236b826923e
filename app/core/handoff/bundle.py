"""A hand-off bundle: one folder with everything a training team needs, written whole or not at all.

    alpaca.json  sharegpt.jsonl  messages.jsonl  prompt_completion.jsonl  data/train-*.parquet
    dataset_info.json   LLaMA-Factory's registry of the files above
    axolotl.yaml        axolotl's `datasets:` entry
    preflight.json      the preflight report (every check, the rows at fault)
    README.md           the dataset card
    manifest.json       source, label, rows, and the sha256 and size of every file

The rows are read once: each row goes to every format's writer, to the preflight check
and to the counters in the same pass, so a source can be a stream that is not kept in
memory. The folder is written under a hidden temporary name beside the target and renamed
into place at the end; a crash leaves no half bundle under the target's name.

A bundle whose preflight failed is still written (the report is what the user reads),
but `Bundle.deliverable` is false and no destination takes it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from app.core import diversity, records
from app.core.conversation import TurnsError, check_turns
from app.core.handoff.formats import FORMATS, FormatError, WrittenFile, open_writer, write_all
from app.core.handoff.hub_card import render_card
from app.core.handoff.meta import HandoffMeta, RowStats
from app.core.handoff.preflight import Preflight, PreflightReport
from app.core.handoff.trainer_configs import axolotl_config, dataset_info

MANIFEST = "manifest.json"
CARD = "README.md"
DATASET_INFO = "dataset_info.json"
AXOLOTL = "axolotl.yaml"
PREFLIGHT = "preflight.json"


@dataclass(frozen=True)
class BundleOptions:
    formats: tuple[str, ...] = FORMATS
    rows_per_shard: int = 100_000
    # the card's diversity section: rows whose max ROUGE-L is looked up (a seeded sample beyond)
    diversity_sample: int = 2000

    def __post_init__(self) -> None:
        unknown = [f for f in self.formats if f not in FORMATS]
        if unknown or not self.formats:
            raise ValueError(f"formats must be some of {', '.join(FORMATS)}; got {', '.join(unknown) or 'none'}")


@dataclass
class Bundle:
    path: Path
    meta: HandoffMeta
    stats: RowStats
    files: list[WrittenFile]
    preflight: PreflightReport | None
    dataset_info: dict[str, Any]
    checksums: dict[str, str] = field(default_factory=dict)
    manifest: dict[str, Any] = field(default_factory=dict)

    @property
    def deliverable(self) -> bool:
        """Checked, and the check passed: the only bundles a destination takes."""
        return self.preflight is not None and self.preflight.ok


def file_sha256(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def checksums(folder: Path) -> dict[str, str]:
    """sha256 of every file under `folder`, by its path relative to it (POSIX separators)."""
    return {p.relative_to(folder).as_posix(): file_sha256(p) for p in sorted(folder.rglob("*")) if p.is_file()}


def _checked_rows(rows: Iterable[dict[str, Any]], meta: HandoffMeta, stats: RowStats,
                  instructions: dict[Any, dict[str, Any]] | None = None) -> Iterator[dict[str, Any]]:
    """Rows validated (a clear error naming the row), given the meta's system prompt, and counted."""
    digest = hashlib.sha256()
    for index, row in enumerate(rows):
        if not isinstance(row, dict):
            raise FormatError(f"row {index}: expected a dict, got {type(row).__name__}")
        for key in ("instruction", "output"):
            if not isinstance(row.get(key), str):
                raise FormatError(f"row {index} (id {row.get('id')}): {key!r} must be a string")
        if not isinstance(row.get("input", ""), str):
            raise FormatError(f"row {index} (id {row.get('id')}): 'input' must be a string")
        row = {**row, "input": row.get("input") or ""}
        try:
            turns = check_turns(row.get("turns"), f"row {index} (id {row.get('id')}): turns")
        except TurnsError as exc:
            raise FormatError(str(exc)) from None
        if turns:
            stats.conversations += 1
            stats.most_exchanges = max(stats.most_exchanges, 1 + len(turns) // 2)
        if meta.system and not row.get("system"):
            row["system"] = meta.system
        stats.rows += 1
        method = str(row.get("method") or "unknown")
        stats.by_method[method] = stats.by_method.get(method, 0) + 1
        digest.update((json.dumps(row, sort_keys=True, ensure_ascii=False, default=str) + "\n").encode("utf-8"))
        if instructions is not None:  # once per instruction: a job's instances share their instruction's id
            instruction = (row.get("job_id"), row.get("id")) if row.get("id") is not None else ("row", index)
            instructions.setdefault(instruction, diversity.grouping_fields(row))
        yield row
    stats.sha256 = digest.hexdigest()


class _Checked:
    """A writer-shaped adapter that feeds the preflight check in the writers' pass."""

    format = "preflight"

    def __init__(self, preflight: Preflight):
        self.preflight = preflight

    def add(self, row: dict[str, Any]) -> None:
        self.preflight.add(row)

    def close(self) -> WrittenFile:
        return WrittenFile("preflight", "")

    def abort(self) -> None:
        pass


def _write_text(path: Path, text: str) -> None:
    with records.atomic_file(path) as fh:
        fh.write(text)


def write_bundle(rows: Iterable[dict[str, Any]], meta: HandoffMeta, target: str | Path,
                 options: BundleOptions = BundleOptions(), preflight: Preflight | None = None) -> Bundle:
    """Write the bundle of `rows` to `target` (which must not exist); returns what was written.

    Without `preflight` the bundle is written unchecked, and is not deliverable."""
    target = Path(target)
    if target.exists():
        raise FileExistsError(f"{target} already exists")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp"))
    try:
        stats = RowStats()
        writers: list[Any] = [open_writer(fmt, tmp, options.rows_per_shard) for fmt in options.formats]
        if preflight is not None:
            writers.append(_Checked(preflight))
        instructions: dict[Any, dict[str, Any]] = {}
        files = [w for w in write_all(_checked_rows(rows, meta, stats, instructions), writers)
                 if w.format != "preflight"]
        spread = diversity.report(instructions.values(), rouge_sample=options.diversity_sample)
        info = dataset_info(meta.name, files)
        _write_text(tmp / DATASET_INFO, json.dumps(info, indent=2, ensure_ascii=False) + "\n")
        axolotl = axolotl_config(files, preflight.terminator if preflight is not None else None)
        if axolotl is not None:
            _write_text(tmp / AXOLOTL, axolotl)
        report = preflight.finish(files, info) if preflight is not None else None
        if report is not None:
            _write_text(tmp / PREFLIGHT, json.dumps(report.as_dict(), indent=2, ensure_ascii=False, default=str) + "\n")
        sums = checksums(tmp)
        _write_text(tmp / CARD, render_card(meta, stats, files, sums, report, has_axolotl=axolotl is not None,
                                              diversity=spread))
        sums[CARD] = file_sha256(tmp / CARD)
        manifest = {
            "name": meta.name, "label": meta.label, "source": {"kind": meta.source_kind, "id": meta.source_id},
            "version": meta.version, "content_hash": meta.content_hash,
            "rows": stats.rows, "rows_sha256": stats.sha256, "by_method": stats.by_method,
            "formats": [f.format for f in files],
            "preflight": None if report is None else {"ok": report.ok, "failed": report.failed_checks()},
            "files": {name: {"sha256": digest, "bytes": (tmp / name).stat().st_size} for name, digest in sums.items()},
            "written_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        _write_text(tmp / MANIFEST, json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")
        records.chmod_tree(tmp)  # mkdtemp's folder is owner-only: the umask's modes, as a plain mkdir gives
        os.rename(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return Bundle(target, meta, stats, files, report, info, sums, manifest)


def read_manifest(folder: str | Path) -> dict[str, Any]:
    manifest: dict[str, Any] = json.loads((Path(folder) / MANIFEST).read_text(encoding="utf-8"))
    return manifest


def zip_bundle(folder: str | Path, target: str | Path) -> Path:
    """A zip of the bundle folder (paths relative to it; Parquet stored as is, the rest
    deflated), written under a temporary name and renamed, so it is whole or absent."""
    folder, target = Path(folder), Path(target)
    with records.atomic_file(target, "wb") as fh, zipfile.ZipFile(fh, "w") as zf:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                method = zipfile.ZIP_STORED if path.suffix == ".parquet" else zipfile.ZIP_DEFLATED
                zf.write(path, path.relative_to(folder).as_posix(), compress_type=method)
    return target
