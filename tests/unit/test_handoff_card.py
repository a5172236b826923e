"""The dataset card: its YAML header parses and is what the Hub expects; its counts are the
source's; the dataset-version fields appear when a version is the source."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import yaml

from app.core.handoff.bundle import BundleOptions, read_manifest, write_bundle
from app.core.handoff.hub_card import size_category
from app.core.handoff.meta import HandoffMeta, ModelInfo, SeedSetInfo
from app.core.handoff.preflight import Preflight, PreflightOptions
from tests.handoff_fixtures import ROWS, tiny_model_dir, tiny_tokenizer  # noqa: F401

META = HandoffMeta(
    name="toy", source_kind="job", source_id=7, title="Toy data", license="apache-2.0", language=("en", "fr"),
    tags=("demo",), recipe={"method": "self_instruct", "params": {"target": 5, "temperature": 0.7}},
    models=(ModelInfo("gemma-3-270m", "generator", {"temperature": 0.7, "top_p": 0.5}),),
    seed_set=SeedSetInfo("default", 3, "ab" * 32, id=2), rejections={"too_similar": 7, "too_short": 2},
    created_at=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
)


def _card(path):
    text = (path / "README.md").read_text(encoding="utf-8")
    assert text.startswith("---\n")
    header, body = text[4:].split("\n---\n", 1)
    return yaml.safe_load(header), body


def test_the_header_parses_and_the_counts_are_the_sources(tmp_path, tiny_tokenizer):
    bundle = write_bundle(ROWS, META, tmp_path / "b", BundleOptions(rows_per_shard=2),
                          Preflight(tiny_tokenizer, PreflightOptions(max_length=256), "tiny"))
    header, body = _card(tmp_path / "b")
    assert header["license"] == "apache-2.0" and header["language"] == ["en", "fr"]
    assert header["task_categories"] == ["text-generation"] and header["size_categories"] == ["n<1K"]
    assert {"synthetic", "self-instruct", "evol-instruct", "demo"} <= set(header["tags"])
    assert header["configs"] == [{"config_name": "default", "data_files": [{"split": "train", "path": "data/train-*"}]}]
    by_method = {"self_instruct": 3, "evol_instruct": 2}
    assert bundle.stats.by_method == by_method and bundle.stats.rows == 5
    for method, n in by_method.items():
        assert f"| {method} | {n} |" in body
    assert "| total | 5 |" in body
    assert "| too_similar | 7 |" in body and "| too_short | 2 |" in body and "| total | 9 |" in body
    assert "ab" * 32 in body and "default (id 2): 3 tasks" in body
    assert "temperature=0.7, top_p=0.5" in body and '"target": 5' in body
    assert "preflight passed: 5 rows" in body
    for name, digest in bundle.checksums.items():  # every file is listed with its sha256
        if name != "README.md":
            assert digest in body, name
    assert 'load_dataset("path/to/this/folder"' in body and "dataset: toy_sharegpt" in body
    assert "axolotl.yaml" in body and "SFTTrainer" in body
    manifest = read_manifest(tmp_path / "b")
    assert manifest["rows"] == 5 and manifest["by_method"] == by_method and manifest["preflight"]["ok"]
    assert set(manifest["files"]) == {p.relative_to(tmp_path / "b").as_posix()
                                      for p in (tmp_path / "b").rglob("*") if p.is_file()} - {"manifest.json"}


def test_a_dataset_version_shows_its_parent_hash_and_diff(tmp_path):
    version = HandoffMeta(name="toy", source_kind="dataset_version", source_id=31, version=3, parent_version=2,
                          content_hash="c0ffee" * 10, diff={"added": 4, "removed": 1})
    assert version.label == "v3"
    write_bundle(ROWS[:2], version, tmp_path / "v", BundleOptions(formats=("messages", "sharegpt")))
    header, body = _card(tmp_path / "v")
    assert header["configs"][0] == {"config_name": "default", "data_files": [{"split": "train", "path": "messages.jsonl"}]}
    assert "| version | 3 |" in body and "| parent version | 2 |" in body
    assert "c0ffee" * 10 in body and "added 4, removed 1" in body
    assert "Recipe" not in body and "Seed set" not in body  # unknown facts are left out


def test_the_rows_hash_follows_the_rows(tmp_path):
    a = write_bundle(ROWS, META, tmp_path / "a", BundleOptions(formats=("messages",)))
    b = write_bundle(ROWS, META, tmp_path / "b", BundleOptions(formats=("messages",)))
    changed = [*ROWS[:-1], {**ROWS[-1], "output": "5"}]
    c = write_bundle(changed, META, tmp_path / "c", BundleOptions(formats=("messages",)))
    assert a.stats.sha256 == b.stats.sha256 != c.stats.sha256


def test_size_categories():
    assert [size_category(n) for n in (0, 999, 1000, 99_999, 250_000, 2_000_000_000)] == \
        ["n<1K", "n<1K", "1K<n<10K", "10K<n<100K", "100K<n<1M", "n>1B"]


def test_a_failed_preflight_is_in_the_card_and_the_bundle_is_not_deliverable(tmp_path, tiny_tokenizer):
    rows = [*ROWS, {"id": 16, "instruction": "Say nothing.", "input": "", "output": ""}]
    bundle = write_bundle(rows, META, tmp_path / "b", preflight=Preflight(tiny_tokenizer, PreflightOptions()))
    assert not bundle.deliverable
    _, body = _card(tmp_path / "b")
    assert "preflight failed: empty_output (1)" in body and "row 5 (id 16)" in body
    report = json.loads((tmp_path / "b" / "preflight.json").read_text())
    assert report["ok"] is False and report["problems"][0]["id"] == 16
