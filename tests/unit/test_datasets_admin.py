"""Datasets core, what the shells need besides versions: changing a dataset, deleting it
with everything it holds (or refusing to), and the paged reads; on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from sqlalchemy import func
from sqlmodel import select

from app.core.datasets import deletion, diff, pages
from app.core.datasets import versions as v
from app.core.datasets.curation import remove_examples
from app.core.datasets.errors import DatasetBusy, DatasetError, VersionInUse
from app.core.datasets.recipe import parse_recipe
from app.models import Dataset, DatasetExample, DatasetHashSegment, DatasetTag, DatasetVersion, Job, ScheduleFire
from tests.dataset_fixtures import db_url, examples, make_dataset, make_seed_set, recipe_data, session_for

__all__ = ["db_url"]
TABLES = (Dataset, DatasetVersion, DatasetExample, DatasetHashSegment, DatasetTag, ScheduleFire)


def _counts(s) -> dict[str, int]:
    return {t.__tablename__: s.exec(select(func.count()).select_from(t)).one() for t in TABLES}


def test_update_keeps_what_is_left_out_and_checks_what_is_given(db_url):
    with session_for(db_url) as s:
        ds = make_dataset(s)
        s.commit()
        v.update_dataset(s, ds, description="New words.")
        assert (ds.description, ds.license) == ("New words.", "apache-2.0")
        v.update_dataset(s, ds, license=None)
        assert ds.license is None and ds.description == "New words."
        other = make_seed_set(s, owner="bob")
        with pytest.raises(DatasetError, match=r"recipe.seed_set_ids\[0\]: no seed set with id"):
            v.update_dataset(s, ds, recipe=parse_recipe(recipe_data([other])))
        with pytest.raises(DatasetError, match="description: at most"):
            v.update_dataset(s, ds, description="x" * (v.MAX_DESCRIPTION + 1))
        with pytest.raises(DatasetError, match="license: 1 to 100"):
            v.update_dataset(s, ds, license="")
        mine = make_seed_set(s)
        v.update_dataset(s, ds, recipe=parse_recipe(recipe_data([mine], grow_by=7)))
        assert ds.recipe["grow_by"] == 7 and ds.recipe["seed_set_ids"] == [mine]


def test_deleting_a_dataset_takes_everything_it_holds_and_nothing_else(db_url):
    with session_for(db_url) as s:
        gone, kept = make_dataset(s, "gone"), make_dataset(s, "kept")
        for ds in (gone, kept):
            v.commit_version(s, ds, examples(4))
            v.commit_version(s, ds, examples(2, start=4))
        s.commit()
        remove_examples(s, gone, example_ids=[r["id"] for r in v.version_rows(s, gone.id, 2)][:1])
        v.move_tag(s, gone.id, "prod", v.get_version(s, gone.id, 1).id)
        s.commit()
        kept_rows = list(v.version_rows(s, kept.id, 2))
        deletion.delete_dataset(s, gone)
        s.commit()
        assert [d.name for d in v.list_datasets(s, "alice")] == ["kept"]
        for table in TABLES[1:]:
            assert {r.dataset_id for r in s.exec(select(table)).all()} <= {kept.id}, table
        assert list(v.version_rows(s, kept.id, 2)) == kept_rows


def test_a_used_version_or_a_running_build_keeps_the_dataset(db_url):
    with session_for(db_url) as s:
        ds = make_dataset(s)
        v.commit_version(s, ds, examples(3))
        train = Job(kind="sft", owner="alice", status="succeeded")
        build = Job(kind=deletion.BUILD_KIND, owner="alice", status="queued", params={"dataset_id": ds.id})
        s.add_all([train, build])
        s.commit()
        before = _counts(s)
        assert deletion.builds_in_progress(s, ds.id) == [build.id]
        with pytest.raises(DatasetBusy, match=f"build job\\(s\\) {build.id} are queued or running"):
            deletion.delete_dataset(s, ds)
        s.rollback()
        build.status = "succeeded"
        s.add(build)
        deletion.record_use(s, v.get_version(s, ds.id, 1), train.id)
        s.commit()
        assert deletion.builds_in_progress(s, ds.id) == []
        with pytest.raises(VersionInUse, match=f"version 1 by job {train.id}"):
            deletion.delete_dataset(s, ds)
        s.rollback()
        assert _counts(s) == before


def test_pages_of_datasets_versions_rows_and_diffs(db_url):
    with session_for(db_url) as s:
        a, b = make_dataset(s, "a"), make_dataset(s, "b")
        make_dataset(s, "c", owner="bob")
        v.commit_version(s, a, examples(5))
        v.commit_version(s, a, examples(3, start=5))
        s.commit()
        remove_examples(s, a, example_ids=[r["id"] for r in v.version_rows(s, a.id, 2)][1:3])
        s.commit()

        total, rows = pages.datasets_page(s, "alice", 1, 10)
        assert total == 2 and [d.name for d in rows] == ["b"]
        latest = pages.latest_versions(s, [a.id, b.id])
        assert set(latest) == {a.id} and latest[a.id].number == 3 and pages.latest_versions(s, []) == {}
        total, versions = pages.versions_page(s, a.id, 0, 2)
        assert total == 3 and [x.number for x in versions] == [3, 2]
        assert pages.tags_by_version(s, a.id) == {3: ["latest"]}

        whole = list(v.version_rows(s, a.id, 3))
        v3 = v.get_version(s, a.id, 3)
        assert pages.rows_page(s, v3, 0, 4) + pages.rows_page(s, v3, 4, 4) == whole
        assert pages.rows_page(s, v3, 0, 0) == []

        change = diff.diff_numbers(s, a.id, 1, 3)
        both = pages.diff_rows_page(s, change, 0, 100)
        assert [(r["change"], r["id"]) for r in both] == (
            [("added", r["id"]) for r in diff.diff_rows(s, _version(s, a, 1), _version(s, a, 3), "added")]
            + [("removed", r["id"]) for r in diff.diff_rows(s, _version(s, a, 1), _version(s, a, 3), "removed")]
        )
        assert [r["change"] for r in both] == ["added"] * 3 + ["removed"] * 2
        assert pages.diff_rows_page(s, change, 2, 2) == both[2:4]
        assert pages.diff_rows_page(s, change, 1, 5, "removed") == both[4:]
        assert pages.diff_rows_page(s, diff.diff_numbers(s, a.id, 2, 2), 0, 5) == []


def _version(s, ds, n):
    return v.get_version(s, ds.id, n)
