"""A dataset version as a hand-off source, on PostgreSQL: its bundle round-trips like a job's
(read back with `datasets`, LLaMA-Factory's rules and TRL's data preparation), the card's
counts and version fields are the version's, and a folder destination takes versions as
`v<N>` with `latest` moving only forward."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator

import pytest
import yaml

from app.core.datasets import curation
from app.core.datasets import versions as v
from app.core.handoff import deliveries, sources
from app.core.handoff.bundle import BundleOptions, read_manifest, write_bundle
from app.core.handoff.config import HandoffConfig
from app.core.handoff.preflight import Preflight, PreflightOptions
from app.db import session_scope
from app.models import Destination, utcnow
from tests import llamafactory_rules as lf
from tests.dataset_handoff_fixtures import GARBLED_ROWS, SKY_ROWS, commit, make_dataset
from tests.handoff_fixtures import LINEAGE, tiny_model_dir, tiny_tokenizer, user_turn  # noqa: F401
from tests.unit.test_handoff_formats import _load, _sft_prepared

ROWS = [
    {"instruction": "Add the numbers.", "input": "2 + 3", "output": "5", "scores": {"max_rouge_l": 0.31}},
    {"instruction": "Name a color of the sky.", "input": "", "output": "The sky is blue.", "method": "evol_instruct",
     "lineage": LINEAGE, "scores": {"max_rouge_l": 0.4}},
    {"instruction": "Say hello in Spanish.", "input": "", "output": "¡Hola! ✓"},
]


@pytest.fixture
def versions(pg_url):
    """Version 1 (three rows), version 2 (two more), version 3 (one row of version 1 removed)."""
    with session_scope(pg_url) as session:
        dataset = make_dataset(session, "toy")
        commit(session, dataset, ROWS, rejected={"rouge_similarity": 5, "too_short": 2})
        commit(session, dataset, SKY_ROWS[:2], rejected={"blacklisted_word": 1})
        first = next(r for r in v.version_rows(session, dataset.id, 2) if r["instruction"] == "Add the numbers.")
        curation.remove_examples(session, dataset, example_ids=[first["id"]])
        return dataset.id


def _card(folder):
    header, body = (folder / "README.md").read_text(encoding="utf-8")[4:].split("\n---\n", 1)
    return yaml.safe_load(header), body


def test_a_versions_bundle_round_trips_like_a_jobs(pg_url, versions, tiny_tokenizer, tiny_model_dir, tmp_path):
    with session_scope(pg_url) as session:
        dataset = v.get_dataset_by_id(session, versions)
        rows, meta = sources.dataset_version_source(session, dataset, 2)
        assert isinstance(rows, Iterator)  # streamed, a page at a time
        stored = list(v.version_rows(session, versions, 2))
        bundle = write_bundle(rows, meta, tmp_path / "b", BundleOptions(rows_per_shard=2),
                              Preflight(tiny_tokenizer, PreflightOptions(max_length=256), "tiny"))
    assert bundle.deliverable and bundle.stats.rows == 5 and meta.label == "v2"
    # the Hub layout, read by `datasets` from the folder: every row with its provenance (a cache of this
    # test's own: `datasets` may take another folder of the same name and layout for this one)
    ds = _load(str(tmp_path / "b"), cache_dir=str(tmp_path / "hf-cache"))
    assert [r["id"] for r in ds] == [r["id"] for r in stored]
    for got, row in zip(ds, stored, strict=True):
        assert (got["instruction"], got["input"], got["output"], got["method"]) == \
            (row["instruction"], row["input"], row["output"], row["method"])
        assert json.loads(got["scores"]) == row["scores"]
        assert (json.loads(got["lineage"]) if got["lineage"] else []) == row["lineage"]
    # LLaMA-Factory, through dataset_info.json: every entry maps every row
    info = json.loads((tmp_path / "b" / "dataset_info.json").read_text())
    assert set(info) == {"toy_alpaca", "toy_sharegpt", "toy_messages", "toy_prompt_completion", "toy_parquet"}
    for name in info:
        examples = lf.load_entry(tmp_path / "b", name)
        assert len(examples) == 5 and all(lf.valid(e) for e in examples), name
        if name == "toy_sharegpt":
            assert [e["_prompt"][-1]["content"] for e in examples] == [user_turn(r) for r in stored]
    # TRL prepares every messages row with the loss on the answer only
    prepared, tokenizer = _sft_prepared(tiny_model_dir, tmp_path / "b" / "messages.jsonl", assistant_only_loss=True)
    assert [tokenizer.decode([t for t in p["labels"] if t != -100]) for p in prepared] == \
        [r["output"] + "<end_of_turn>" for r in stored]


def test_the_cards_counts_and_version_fields_are_the_versions(pg_url, versions, tmp_path):
    with session_scope(pg_url) as session:
        dataset = v.get_dataset_by_id(session, versions)
        for number in (2, 3):
            rows, meta = sources.dataset_version_source(session, dataset, number)
            write_bundle(rows, meta, tmp_path / f"v{number}", BundleOptions(formats=("messages", "parquet")))
        second, third = v.get_version(session, versions, 2), v.get_version(session, versions, 3)
    header, body = _card(tmp_path / "v2")
    assert header["license"] == "apache-2.0" and header["pretty_name"] == "toy, version 2"
    assert "| version | 2 |" in body and "| parent version | 1 |" in body
    assert f"`{second.content_hash}`" in body and "added 2, removed 0, corrected 0" in body
    for method, n in second.counts["by_method"].items():  # the version's own counts
        assert f"| {method} | {n} |" in body
    assert f"| total | {second.row_count} |" in body
    assert "| blacklisted_word | 1 |" in body and "rouge_similarity" not in body  # the build that made version 2
    assert "self_instruct" in body and "seeds-toy (id" in body and "3 tasks" in body
    manifest = read_manifest(tmp_path / "v2")
    assert manifest["rows"] == second.row_count and manifest["by_method"] == second.counts["by_method"]
    assert manifest["content_hash"] == second.content_hash and manifest["label"] == "v2"
    _, body = _card(tmp_path / "v3")  # a removal: the diff to its parent, no build rejections
    assert "added 0, removed 1, corrected 0" in body and "| parent version | 2 |" in body
    assert f"| total | {third.row_count} |" in body and "| removal" not in body
    assert "Candidates rejected" not in body and "- made by: removal" in body


def test_a_folder_destination_takes_versions_as_vN_and_latest_moves_only_forward(pg_url, versions, tiny_tokenizer,
                                                                                 tmp_path):
    config = HandoffConfig(formats=["sharegpt", "messages"])
    with session_scope(pg_url) as session:
        dest = Destination(owner=None, name="shared", kind="folder", config={"path": str(tmp_path / "shared")})
        session.add(dest)
        session.flush()
        dataset = v.get_dataset_by_id(session, versions)
        landed = []
        for number in (2, 1, 3):
            rows, meta = sources.dataset_version_source(session, dataset, number)
            delivery = deliveries.deliver(session, dest, rows, meta, Preflight(tiny_tokenizer), config,
                                          tmp_path / "work", utcnow())
            assert delivery.status == "done" and delivery.source_kind == "dataset_version", delivery.last_error
            landed.append((delivery.label, os.readlink(tmp_path / "shared" / "toy" / "latest")))
    assert landed == [("v2", "v2"), ("v1", "v2"), ("v3", "v3")]  # v1 delivered late does not move latest back
    assert json.loads((tmp_path / "shared" / "toy" / "latest.json").read_text())["label"] == "v3"
    for label, rows in (("v1", 3), ("v2", 5), ("v3", 4)):
        assert read_manifest(tmp_path / "shared" / "toy" / label)["rows"] == rows


def test_a_missing_version_is_a_clear_error(pg_url, versions):
    from app.core.datasets.errors import VersionNotFound

    with session_scope(pg_url) as session, pytest.raises(VersionNotFound, match="no version 9"):
        sources.dataset_version_source(session, v.get_dataset_by_id(session, versions), 9)
    with session_scope(pg_url) as session, pytest.raises(VersionNotFound, match="no tag 'prod'"):
        sources.dataset_version_source(session, v.get_dataset_by_id(session, versions), "prod")


def test_garbled_rows_pass_the_preflight_and_an_empty_answer_does_not(pg_url, tiny_tokenizer):
    from app.core.handoff.preflight import check_rows

    with session_scope(pg_url) as session:
        dataset = make_dataset(session, "g")
        commit(session, dataset, GARBLED_ROWS)
        commit(session, dataset, [{"instruction": "Say nothing at all.", "input": "", "output": ""}])
        good = check_rows(sources.version_rows(session, dataset.id, 1), tiny_tokenizer)
        bad = check_rows(sources.version_rows(session, dataset.id, 2), tiny_tokenizer)
        empty_id = list(v.version_rows(session, dataset.id, 2))[-1]["id"]
    assert good.ok and not bad.ok
    assert [(p.check, p.index, p.id) for p in bad.problems] == [("empty_output", 8, empty_id)]
