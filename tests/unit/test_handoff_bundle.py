"""A bundle is written whole or not at all, and the rows are read once."""

from __future__ import annotations

import pytest

from app.core.handoff.bundle import BundleOptions, checksums, read_manifest, write_bundle
from app.core.handoff.meta import HandoffMeta
from tests.handoff_fixtures import ROWS

META = HandoffMeta(name="toy", source_kind="job", source_id=7)


def test_every_file_is_in_the_bundle_and_in_the_manifest(tmp_path):
    bundle = write_bundle(iter(ROWS), META, tmp_path / "b")  # an iterator: one pass for every format
    names = sorted(p.relative_to(tmp_path / "b").as_posix() for p in (tmp_path / "b").rglob("*") if p.is_file())
    assert names == ["README.md", "alpaca.json", "axolotl.yaml", "data/train-00000-of-00001.parquet",
                     "dataset_info.json", "manifest.json", "messages.jsonl", "prompt_completion.jsonl",
                     "sharegpt.jsonl"]
    assert all(f.rows == 5 for f in bundle.files)
    manifest = read_manifest(tmp_path / "b")
    on_disk = checksums(tmp_path / "b")
    assert {k: v["sha256"] for k, v in manifest["files"].items()} == {k: v for k, v in on_disk.items()
                                                                       if k != "manifest.json"}
    assert manifest["label"] == "job-7" and manifest["preflight"] is None and not bundle.deliverable
    assert [p.name for p in tmp_path.iterdir()] == ["b"]


def test_a_failure_midway_leaves_nothing(tmp_path):
    def rows():
        yield from ROWS[:3]
        raise RuntimeError("the source broke")

    with pytest.raises(RuntimeError, match="the source broke"):
        write_bundle(rows(), META, tmp_path / "b")
    assert list(tmp_path.iterdir()) == []


def test_an_existing_target_is_refused_and_kept(tmp_path):
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError):
        write_bundle(ROWS, META, tmp_path / "b")
    assert (tmp_path / "b" / "keep.txt").read_text() == "mine" and len(list(tmp_path.iterdir())) == 1


def test_options_are_checked():
    with pytest.raises(ValueError, match="formats must be some of"):
        BundleOptions(formats=("alpaca", "csv"))


def test_a_system_prompt_from_the_meta_reaches_rows_without_one(tmp_path):
    import json

    meta = HandoffMeta(name="toy", source_kind="job", source_id=7, system="Be brief.")
    write_bundle(ROWS, meta, tmp_path / "b", BundleOptions(formats=("sharegpt",)))
    systems = [json.loads(line).get("system") for line in (tmp_path / "b" / "sharegpt.jsonl").read_text().splitlines()]
    assert systems == ["Be brief.", "Be brief.", "Answer with one word.", "Be brief.", "Be brief."]
