"""Datasets core: removal and correction make new versions; old versions never change;
diff, tags, rollback and deletion."""

from __future__ import annotations

import pytest
from pydantic import ValidationError
from sqlalchemy import func
from sqlmodel import select

from app.core.datasets import deletion, diff, tags
from app.core.datasets import export as ds_export
from app.core.datasets import versions as v
from app.core.datasets.curation import Correction, ExampleQuery, correct_examples, find_examples, remove_examples
from app.core.datasets.errors import (
    CrossDatasetDiff,
    DatasetError,
    EmptyChange,
    InvalidName,
    VersionConflict,
    VersionInUse,
    VersionNotFound,
)
from app.models import DatasetExample
from tests.dataset_fixtures import db_url, examples, make_dataset, make_job, session_for

__all__ = ["db_url"]


def _snapshot(s, ds, n):
    """Everything a reader of version n can see: its rows, its stored and recomputed hash, its export."""
    return (
        list(v.version_rows(s, ds.id, n)),
        v.get_version(s, ds.id, n).content_hash,
        v.content_hash(s, ds.id, n),
        "".join(ds_export.export_chunks(s, ds.id, n, "messages")),
    )


def _two_versions(s):
    ds = make_dataset(s)
    v.commit_version(s, ds, examples(6))
    v.commit_version(s, ds, examples(4, start=6, method="evol_instruct"))
    s.commit()
    return ds


def test_removal_and_correction_leave_older_versions_byte_identical(db_url):
    with session_for(db_url) as s:
        ds = _two_versions(s)
        before = {n: _snapshot(s, ds, n) for n in (1, 2)}
        rows2 = before[2][0]

        v3 = remove_examples(s, ds, example_ids=[rows2[1]["id"], rows2[7]["id"]], expected_latest=2)
        s.commit()
        target = next(r for r in v.version_rows(s, ds.id, 3) if r["source_instruction_id"] == 4)
        v4 = correct_examples(s, ds, [Correction(target["id"], output="A better answer.")], expected_latest=3)
        s.commit()

        for n in (1, 2):
            assert _snapshot(s, ds, n) == before[n]
        assert (v3.kind, v3.row_count, v3.counts["removed"]) == ("removal", 8, 2)
        assert v3.counts["removed_by_method"] == {"evol_instruct": 1, "self_instruct": 1}
        assert v3.counts["by_method"] == {"evol_instruct": 3, "self_instruct": 5}
        assert (v4.kind, v4.row_count, v4.counts["corrected"]) == ("correction", 8, 1)
        for n in (3, 4):
            assert v.get_version(s, ds.id, n).content_hash == v.content_hash(s, ds.id, n)

        rows4 = list(v.version_rows(s, ds.id, 4))
        ids3 = {r["id"] for r in v.version_rows(s, ds.id, 3)}
        new = [r for r in rows4 if r["id"] not in ids3]
        assert len(new) == 1 and new[0]["replaces_id"] == target["id"] and new[0]["output"] == "A better answer."
        assert new[0]["instruction"] == target["instruction"] and new[0]["added_in"] == 4
        assert target["id"] not in {r["id"] for r in rows4}
        old = s.get(DatasetExample, target["id"])
        assert (old.output, old.added_in, old.removed_in) == (target["output"], target["added_in"], 4)
        # one row per example, one more per correction: nothing was copied per version
        assert s.exec(select(func.count()).select_from(DatasetExample)).one() == 11


def test_removal_by_query(db_url):
    with session_for(db_url) as s:
        ds = make_dataset(s)
        exs = examples(6)
        exs[0].instruction = "Write a program that sorts a list."  # rule write_a_program
        exs[1].output = ""  # rule empty_output
        exs[2].scores["max_rouge_l"] = 0.69
        v.commit_version(s, ds, exs)
        s.commit()

        q = ExampleQuery(rules=["write_a_program", "empty_output"])
        assert [r["source_instruction_id"] for r in find_examples(s, ds.id, 1, q)] == [1, 2]
        high = ExampleQuery(score="max_rouge_l", score_min=0.6)
        assert [r["source_instruction_id"] for r in find_examples(s, ds.id, 1, high)] == [3]
        text = ExampleQuery(text="ENTRÉE 4", fields=["input"])
        assert [r["source_instruction_id"] for r in find_examples(s, ds.id, 1, text)] == [5]
        both = ExampleQuery(text="étape", method="self_instruct", score="max_rouge_l", score_max=0.115)
        assert [r["source_instruction_id"] for r in find_examples(s, ds.id, 1, both)] == [2]

        version = remove_examples(s, ds, query=q)
        s.commit()
        assert version.row_count == 4 and version.counts["query"]["rules"] == ["write_a_program", "empty_output"]
        assert list(find_examples(s, ds.id, 2, q)) == []


def test_bad_queries_are_refused():
    for bad in ({}, {"score": "max_rouge_l"}, {"score_min": 0.5}, {"rules": ["too_similar"]}, {"text": ""},
                {"text": "x", "fields": ["label"]}):
        with pytest.raises(ValidationError):
            ExampleQuery(**bad)


def test_changes_must_start_from_the_latest_and_change_something(db_url):
    with session_for(db_url) as s:
        ds = _two_versions(s)
        rows = list(v.version_rows(s, ds.id, 2))
        with pytest.raises(VersionConflict, match="version 1 is not the latest"):
            remove_examples(s, ds, example_ids=[rows[0]["id"]], expected_latest=1)
        s.rollback()
        with pytest.raises(EmptyChange, match="nothing to remove"):
            remove_examples(s, ds, query=ExampleQuery(text="no such text anywhere"))
        s.rollback()
        with pytest.raises(VersionNotFound, match="example.s. 999999"):
            remove_examples(s, ds, example_ids=[rows[0]["id"], 999999])
        s.rollback()
        with pytest.raises(EmptyChange, match="already reads so"):
            correct_examples(s, ds, [Correction(rows[0]["id"], output=rows[0]["output"])])
        s.rollback()
        with pytest.raises(DatasetError, match="corrected twice"):
            correct_examples(s, ds, [Correction(rows[0]["id"], output="a"), Correction(rows[0]["id"], output="b")])
        s.rollback()
        with pytest.raises(DatasetError, match="example_ids or query"):
            remove_examples(s, ds)
        s.rollback()
        remove_examples(s, ds, example_ids=[rows[0]["id"]])
        s.commit()
        with pytest.raises(VersionNotFound, match="not in version 3"):  # already removed
            remove_examples(s, ds, example_ids=[rows[0]["id"]])
        s.rollback()
        assert v.latest_number(s, ds.id) == 3


def test_diff_counts_and_rows_in_both_directions(db_url):
    with session_for(db_url) as s:
        ds = _two_versions(s)
        rows2 = list(v.version_rows(s, ds.id, 2))
        remove_examples(s, ds, example_ids=[rows2[0]["id"], rows2[6]["id"]])
        correct_examples(s, ds, [Correction(rows2[2]["id"], output="fixed")])
        s.commit()

        def get(n):
            return v.get_version(s, ds.id, n)

        d12 = diff.diff(s, get(1), get(2))
        assert (d12.added, d12.removed, d12.corrected, d12.added_by_method) == (4, 0, 0, {"evol_instruct": 4})
        d24 = diff.diff(s, get(2), get(4))
        assert (d24.added, d24.removed, d24.corrected) == (1, 3, 1) and d24.content_changed
        assert [r["output"] for r in diff.diff_rows(s, get(2), get(4), "added")] == ["fixed"]
        assert [r["id"] for r in diff.diff_rows(s, get(2), get(4), "removed", page_size=1)] == [
            rows2[0]["id"], rows2[2]["id"], rows2[6]["id"]]
        d42 = diff.diff(s, get(4), get(2))
        assert (d42.added, d42.removed) == (3, 1)
        assert [r["id"] for r in diff.diff_rows(s, get(4), get(2), "added")] == [
            rows2[0]["id"], rows2[2]["id"], rows2[6]["id"]]
        # the diff's rows turn one version's rows into the other's
        ids2 = {r["id"] for r in rows2}
        ids4 = (ids2 - {r["id"] for r in diff.diff_rows(s, get(2), get(4), "removed")}) | {
            r["id"] for r in diff.diff_rows(s, get(2), get(4), "added")}
        assert ids4 == {r["id"] for r in v.version_rows(s, ds.id, 4)}
        same = diff.diff(s, get(3), get(3))
        assert (same.added, same.removed, same.content_changed) == (0, 0, False)

        other = make_dataset(s, name="other")
        v.commit_version(s, other, examples(1))
        s.commit()
        with pytest.raises(CrossDatasetDiff):
            diff.diff(s, get(1), v.get_version(s, other.id, 1))
        with pytest.raises(VersionNotFound):
            diff.diff_numbers(s, ds.id, 1, 9)


def test_tags_latest_moves_by_itself_user_tags_on_request_rollback(db_url):
    with session_for(db_url) as s:
        ds = _two_versions(s)
        assert tags.list_tags(s, ds.id) == {"latest": 2}
        tags.set_tag(s, ds, "prod", 2)
        v.commit_version(s, ds, examples(2, start=50))
        s.commit()
        assert tags.list_tags(s, ds.id) == {"latest": 3, "prod": 2}
        tags.set_tag(s, ds, "prod", "1")  # rollback
        s.commit()
        assert tags.resolve(s, ds.id, "prod").number == 1
        assert tags.resolve(s, ds.id, "latest").number == 3
        assert tags.resolve(s, ds.id, 2).number == 2
        prod = tags.resolve(s, ds.id, "prod")
        assert list(v.version_rows(s, ds.id, prod.number)) == list(v.version_rows(s, ds.id, 1))

        with pytest.raises(VersionNotFound, match="no version 7"):
            tags.set_tag(s, ds, "prod", 7)
        with pytest.raises(VersionNotFound, match="no tag 'staging'"):
            tags.set_tag(s, ds, "prod", "staging")
        with pytest.raises(DatasetError, match="moves by itself"):
            tags.set_tag(s, ds, "latest", 1)
        for bad in ("12", "", "a b", "-x"):
            with pytest.raises(InvalidName):
                tags.set_tag(s, ds, bad, 1)
        with pytest.raises(DatasetError):
            tags.delete_tag(s, ds, "latest")
        s.rollback()
        assert tags.list_tags(s, ds.id) == {"latest": 3, "prod": 1}
        tags.delete_tag(s, ds, "prod")
        s.commit()
        assert tags.list_tags(s, ds.id) == {"latest": 3}
        with pytest.raises(VersionNotFound):
            tags.resolve(s, ds.id, "prod")


def test_only_the_latest_unused_untagged_version_can_be_deleted(db_url):
    with session_for(db_url) as s:
        ds = _two_versions(s)
        rows2 = list(v.version_rows(s, ds.id, 2))
        v2_before = _snapshot(s, ds, 2)
        remove_examples(s, ds, example_ids=[rows2[3]["id"]])
        correct_examples(s, ds, [Correction(rows2[4]["id"], instruction="Reworded.")])
        s.commit()

        with pytest.raises(VersionInUse, match="not the latest"):
            deletion.delete_version(s, ds, 3)
        s.rollback()
        tags.set_tag(s, ds, "prod", 4)
        with pytest.raises(VersionInUse, match="prod"):
            deletion.delete_version(s, ds, 4)
        s.rollback()

        deletion.delete_version(s, ds, 4)  # undo the correction
        deletion.delete_version(s, ds, 3)  # undo the removal
        s.commit()
        assert v.latest_number(s, ds.id) == 2 and tags.list_tags(s, ds.id) == {"latest": 2}
        assert _snapshot(s, ds, 2) == v2_before
        assert s.exec(select(func.count()).select_from(DatasetExample)).one() == 10

        job = make_job(s, kind="sft")
        deletion.record_use(s, v.get_version(s, ds.id, 2), job)
        deletion.record_use(s, v.get_version(s, ds.id, 2), job)  # idempotent
        s.commit()
        with pytest.raises(VersionInUse, match=f"used by job.s. {job}"):
            deletion.delete_version(s, ds, 2)
        s.rollback()
        # a new version after a deletion takes the freed number and hashes as before
        again = v.commit_version(s, ds, examples(1, start=70))
        s.commit()
        assert again.number == 3 and again.content_hash == v.content_hash(s, ds.id, 3)


def test_deleting_the_only_version_removes_latest(db_url):
    with session_for(db_url) as s:
        ds = make_dataset(s)
        v.commit_version(s, ds, examples(2))
        s.commit()
        deletion.delete_version(s, ds, 1)
        s.commit()
        assert v.latest_number(s, ds.id) == 0 and tags.list_tags(s, ds.id) == {}
        with pytest.raises(VersionNotFound):
            deletion.delete_version(s, ds, 1)
