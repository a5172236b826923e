"""Datasets core: create, commit versions, read a version's rows, the content hash, export."""

from __future__ import annotations

import json
import threading

import pytest
from sqlalchemy import func
from sqlmodel import select

from app.core import export as job_export
from app.core.datasets import content, seeding
from app.core.datasets import export as ds_export
from app.core.datasets import versions as v
from app.core.datasets.errors import (
    DatasetError,
    DuplicateDataset,
    EmptyChange,
    InvalidName,
    VersionConflict,
    VersionNotFound,
)
from app.core.datasets.recipe import parse_recipe
from app.core.filters.dedup import NearDupIndex
from app.core.filters.novelty import NoveltyIndex
from app.models import Dataset, DatasetExample
from tests.dataset_fixtures import (
    OWNER,
    db_url,
    examples,
    make_dataset,
    make_job,
    make_seed_set,
    recipe_data,
    session_for,
)

__all__ = ["db_url"]


def _contents(rows):
    return [{k: r[k] for k in content.CONTENT_FIELDS} for r in rows]


def test_two_builds_make_versions_one_and_two(db_url):
    with session_for(db_url) as s:
        ds = make_dataset(s)
        job1, job2 = make_job(s), make_job(s)
        v1 = v.commit_version(s, ds, examples(5), build_job_id=job1, build_counts={"rejected_by_rule": {"too_similar": 3}})
        s.commit()
        v2 = v.commit_version(s, ds, examples(4, start=5, method="evol_instruct"), build_job_id=job2, expected_latest=1)
        s.commit()

        assert (v1.number, v1.parent_id, v1.kind, v1.row_count) == (1, None, "build", 5)
        assert (v2.number, v2.parent_id, v2.row_count) == (2, v1.id, 9)
        assert v1.counts["build"] == {"rejected_by_rule": {"too_similar": 3}}
        assert v2.counts["added_by_method"] == {"evol_instruct": 4}
        assert v2.counts["by_method"] == {"evol_instruct": 4, "self_instruct": 5}
        assert "support-sft, version 2" in v2.card and f"sha256:{v2.content_hash}" in v2.card

        rows1 = list(v.version_rows(s, ds.id, 1))
        rows2 = list(v.version_rows(s, ds.id, 2))
        assert _contents(rows1) == [ex.content() for ex in examples(5)]
        assert _contents(rows2) == [ex.content() for ex in examples(5) + examples(4, start=5, method="evol_instruct")]
        assert [(r["added_in"], r["position"]) for r in rows2] == [(1, i) for i in range(5)] + [(2, i) for i in range(4)]
        # storage grows with the examples, not examples x versions
        assert s.exec(select(func.count()).select_from(DatasetExample)).one() == 9
        assert v.latest_version(s, ds.id).number == 2


def test_rows_stream_across_pages_in_order(db_url):
    with session_for(db_url) as s:
        ds = make_dataset(s)
        for start in (0, 7, 14):
            v.commit_version(s, ds, examples(7, start=start))
        s.commit()
        paged = list(v.version_rows(s, ds.id, 3, page_size=4))
        whole = list(v.version_rows(s, ds.id, 3, page_size=1000))
        assert paged == whole and len(paged) == 21
        assert [r["source_instruction_id"] for r in paged] == list(range(1, 22))


def test_stored_hash_equals_the_hash_recomputed_from_content(db_url):
    with session_for(db_url) as s:
        ds = make_dataset(s)
        v.commit_version(s, ds, examples(6))
        v.commit_version(s, ds, examples(3, start=6))
        s.commit()
        for n in (1, 2):
            assert v.get_version(s, ds.id, n).content_hash == v.content_hash(s, ds.id, n)
        assert v.get_version(s, ds.id, 1).content_hash != v.get_version(s, ds.id, 2).content_hash


def test_hash_is_the_same_on_sqlite_and_postgresql(sqlite_url, pg_url):
    hashes = []
    for url in (sqlite_url, pg_url):
        with session_for(url) as s:
            ds = make_dataset(s)
            v.commit_version(s, ds, examples(8))
            v.commit_version(s, ds, examples(5, start=8, method="evol_instruct"))
            s.commit()
            hashes.append([v.get_version(s, ds.id, n).content_hash for n in (1, 2)]
                          + [v.content_hash(s, ds.id, n) for n in (1, 2)])
    assert hashes[0] == hashes[1]
    # and it is the documented tree over the canonical rows
    seg1 = content.segment_digest(content.row_digest(ex.content()) for ex in examples(8))
    seg2 = content.segment_digest(content.row_digest(ex.content()) for ex in examples(5, start=8, method="evol_instruct"))
    assert hashes[0][1] == content.combine_segments([seg1, seg2])


def test_canonical_json_is_sorted_compact_utf8():
    row = {"instruction": "é", "input": "", "output": "o", "method": "m", "lineage": [], "scores": {"b": 1.5, "a": None}}
    assert content.canonical_json(row) == (
        '{"input":"","instruction":"é","lineage":[],"method":"m","output":"o","scores":{"a":null,"b":1.5}}'.encode()
    )
    with pytest.raises(ValueError):
        content.canonical_json({**row, "scores": {"x": float("nan")}})


def test_duplicate_name_per_owner_is_refused_and_other_owners_may_reuse_it(db_url):
    with session_for(db_url) as s:
        make_dataset(s, name="support-sft")
        s.commit()
        with pytest.raises(DuplicateDataset, match="'support-sft' already exists"):
            make_dataset(s, name="support-sft")
        s.rollback()
        other = make_dataset(s, name="support-sft", owner="bob")
        local = make_dataset(s, name="support-sft", owner=None)
        s.commit()
        assert other.owner == "bob" and local.owner == v.LOCAL_OWNER
        assert [d.name for d in v.list_datasets(s, OWNER)] == ["support-sft"]
        with pytest.raises(DuplicateDataset):
            make_dataset(s, name="support-sft", owner=None)


def test_bad_names_and_unknown_or_foreign_seed_sets_write_nothing(db_url):
    with session_for(db_url) as s:
        mine = make_seed_set(s, OWNER)
        theirs = make_seed_set(s, "bob")
        s.commit()
        recipe = parse_recipe(recipe_data([mine]))
        for bad in ("", "has space", "-dash-first", "x" * 101, "a/b", "trailing\n"):
            with pytest.raises(InvalidName):
                v.create_dataset(s, OWNER, bad, recipe)
        with pytest.raises(DatasetError, match=r"recipe.seed_set_ids\[1\]: no seed set with id 999"):
            v.create_dataset(s, OWNER, "ok", parse_recipe(recipe_data([mine, 999])))
        with pytest.raises(DatasetError, match=rf"recipe.seed_set_ids\[0\]: no seed set with id {theirs}"):
            v.create_dataset(s, OWNER, "ok", parse_recipe(recipe_data([theirs])))
        s.rollback()
        assert v.list_datasets(s, OWNER) == []


def test_a_resumed_build_commits_once_and_a_stale_build_is_refused(db_url):
    with session_for(db_url) as s:
        ds = make_dataset(s)
        job = make_job(s)
        first = v.commit_version(s, ds, examples(3), build_job_id=job)
        s.commit()
        again = v.commit_version(s, ds, examples(3, start=100), build_job_id=job)
        assert again.id == first.id and v.latest_number(s, ds.id) == 1
        with pytest.raises(VersionConflict, match="version 0 is not the latest"):
            v.commit_version(s, ds, examples(2, start=3), expected_latest=0)
        s.rollback()
        assert v.latest_number(s, ds.id) == 1


def test_empty_or_invalid_examples_write_nothing(db_url):
    with session_for(db_url) as s:
        ds = make_dataset(s)
        s.commit()
        with pytest.raises(EmptyChange):
            v.commit_version(s, ds, [])
        bad = examples(3)
        bad[2].instruction = "  "
        with pytest.raises(DatasetError, match=r"new_examples\[2\].instruction: empty"):
            v.commit_version(s, ds, bad)
        bad = examples(2)
        bad[1].scores = {"x": float("inf")}
        with pytest.raises(DatasetError, match=r"new_examples\[1\]: not JSON content"):
            v.commit_version(s, ds, bad)
        s.rollback()
        assert v.latest_number(s, ds.id) == 0
        assert s.exec(select(func.count()).select_from(DatasetExample)).one() == 0
        with pytest.raises(VersionNotFound, match="no version 1"):
            v.version_rows(s, ds.id, 1)


@pytest.mark.parametrize("fmt", job_export.FORMATS)
def test_streamed_export_reads_like_the_job_export(db_url, fmt, tmp_path):
    with session_for(db_url) as s:
        ds = make_dataset(s)
        v.commit_version(s, ds, examples(4))
        v.commit_version(s, ds, examples(3, start=4))
        s.commit()
        rows = [{k: r[k] for k in ("instruction", "input", "output", "method", "lineage")}
                for r in v.version_rows(s, ds.id, 2)]
        expected = job_export.render(rows, fmt)
        streamed = "".join(ds_export.export_chunks(s, ds.id, 2, fmt, page_size=2))
        assert streamed == expected
        size = ds_export.write_export(s, ds.id, 2, fmt, tmp_path / ds_export.file_name(ds.name, 2, fmt))
        assert (tmp_path / f"support-sft-v2.{ds_export.EXTENSIONS[fmt]}").read_text(encoding="utf-8") == expected
        assert size == len(expected.encode("utf-8"))
        if fmt == "messages":
            first = json.loads(streamed.splitlines()[0])
            assert first["messages"][0]["content"] == examples(1)[0].instruction and first["method"] == "self_instruct"


def test_export_names_a_bad_format_or_version(db_url):
    with session_for(db_url) as s:
        ds = make_dataset(s)
        v.commit_version(s, ds, examples(1))
        s.commit()
        with pytest.raises(DatasetError, match="format: unknown export format 'parquet'"):
            ds_export.export_chunks(s, ds.id, 1, "parquet")
        with pytest.raises(VersionNotFound, match="no version 2"):
            ds_export.export_chunks(s, ds.id, 2, "messages")


def test_alpaca_export_of_an_empty_version_is_an_empty_list(db_url):
    with session_for(db_url) as s:
        from app.core.datasets.curation import remove_examples

        ds = make_dataset(s)
        v.commit_version(s, ds, examples(2))
        version = remove_examples(s, ds, example_ids=[r["id"] for r in v.version_rows(s, ds.id, 1)])
        s.commit()
        assert version.row_count == 0 and version.content_hash == content.EMPTY_HASH
        assert "".join(ds_export.export_chunks(s, ds.id, 2, "alpaca")) == job_export.render([], "alpaca")
        assert "".join(ds_export.export_chunks(s, ds.id, 2, "messages")) == ""


def test_novelty_and_dedup_seeding_cover_seeds_and_every_live_example(db_url):
    with session_for(db_url) as s:
        ds = make_dataset(s)
        exs = examples(5)
        exs[4].instruction = exs[3].instruction  # two examples of one instruction: indexed once
        v.commit_version(s, ds, exs)
        s.commit()
        texts = list(seeding.novelty_texts(s, ds))
        seeds = [f"Seed task number {i}: explain a thing clearly." for i in range(3)]
        assert texts == seeds + [ex.instruction for ex in exs[:4]]
        index = NoveltyIndex(threshold=0.7)
        assert seeding.fill_novelty_index(index, texts) == 7
        assert not index.check(exs[0].instruction).novel

        docs = list(seeding.dedup_documents(s, ds))
        assert len(docs) == 3 + 5 and docs[0][0].startswith("seed:") and docs[-1][0].startswith("example:")
        near = NearDupIndex(threshold=0.9)
        assert near.check_and_add_many(docs) == [None] * 8
        assert near.check_and_add("new", docs[-1][1]) == docs[-1][0]


def test_novelty_seeding_of_a_dataset_without_versions_is_the_seeds(db_url):
    with session_for(db_url) as s:
        ds = make_dataset(s)
        s.commit()
        assert len(list(seeding.novelty_texts(s, ds))) == 3
        assert len(list(seeding.dedup_documents(s, ds))) == 3


def test_two_workers_committing_one_build_make_one_version(pg_url):
    """A build job delivered twice (a worker presumed dead, and its replacement) commits once:
    the second commit waits for the dataset lock, then finds the version the first made."""
    with session_for(pg_url) as s:
        ds_id, job = make_dataset(s).id, make_job(s)
        s.commit()
    barrier = threading.Barrier(2)
    made: list[tuple[int, int]] = []

    def commit(start):
        with session_for(pg_url) as s:
            ds = s.get(Dataset, ds_id)
            barrier.wait()
            version = v.commit_version(s, ds, examples(3, start=start), build_job_id=job, expected_latest=0)
            s.commit()
            made.append((version.id, version.number))

    threads = [threading.Thread(target=commit, args=(start,)) for start in (0, 100)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(made) == 2 and made[0] == made[1] and made[0][1] == 1
    with session_for(pg_url) as s:
        assert v.latest_number(s, ds_id) == 1
        assert s.exec(select(func.count()).select_from(DatasetExample)).one() == 3


def test_a_commit_stores_the_versions_diversity_by_method_persona_and_topic_in_its_card(db_url):
    from app.core.datasets import curation

    people = ["A nurse on night shifts.", "A beekeeper who sells honey."]
    made = [
        v.NewExample(f"Write a short note number {i} about {topic}.", "", "ok", "persona" if i < 4 else "topic_tree",
                     lineage=[{"persona": people[i % 2]} if i < 4 else {"topic_path": ["Garden", topic]}])
        for i, topic in enumerate(["bees", "honey", "shifts", "sleep", "roses", "compost"])
    ]
    with session_for(db_url) as s:
        ds = make_dataset(s)
        first = v.commit_version(s, ds, made, build_job_id=make_job(s))
        s.commit()
        spread = first.counts["diversity"]
        assert spread["overall"]["rows"] == 6
        assert spread["by"]["method"]["persona"]["rows"] == 4 and spread["by"]["method"]["topic_tree"]["rows"] == 2
        assert {name: g["rows"] for name, g in spread["by"]["persona"].items()} == {people[0]: 2, people[1]: 2}
        assert set(spread["by"]["topic"]) == {"Garden > roses", "Garden > compost"}
        assert "top_verbs" not in spread["by"]["persona"][people[0]]["verb_noun"]  # groups are kept small
        assert spread["overall"]["verb_noun"]["top_verbs"][0]["verb"] == "write"
        card = first.card
        assert "## Diversity" in card and "Over 6 instructions" in card
        assert f"| persona | {people[0]} | 2 |" in card and "| topic | Garden > compost | 1 |" in card
        # a later version's report is its own: removing rows recomputes it
        ids = [r["id"] for r in v.version_rows(s, ds.id, 1) if r["method"] == "topic_tree"]
        second = curation.remove_examples(s, ds, example_ids=ids)
        s.commit()
        assert second.counts["diversity"]["overall"]["rows"] == 4 and "topic" not in second.counts["diversity"]["by"]
        assert "Over 4 instructions" in second.card and "| topic |" not in second.card
        assert "sampled" not in first.counts["diversity"] and "sampled" not in second.counts["diversity"]


def test_a_large_versions_diversity_is_over_a_seeded_bounded_sample_and_says_so(db_url, monkeypatch):
    monkeypatch.setattr(v, "DIVERSITY_SAMPLE_ROWS", 8)
    made = [v.NewExample(f"Write a short note number {i} about the garden.", "", "ok", "self_instruct")
            for i in range(30)]
    with session_for(db_url) as s:
        ds = make_dataset(s)
        first = v.commit_version(s, ds, made, build_job_id=make_job(s))
        s.commit()
        spread = first.counts["diversity"]
        assert spread["sampled"] == {"rows": 8, "of": 30} and spread["overall"]["rows"] == 8
        assert "Over a seeded sample of 8 instructions of the version's 30 rows" in first.card
        again = v.version_diversity(s, ds.id, 1)  # the same rows: the same sample, the same figures
        assert again == spread
        assert v.version_diversity(s, ds.id, 1, sample_rows=30) == v.version_diversity(s, ds.id, 1, sample_rows=100)
        assert "sampled" not in v.version_diversity(s, ds.id, 1, sample_rows=30)
        # unbounded, it is the report over every row as the API computes it on request
        from app.core import diversity

        every = diversity.version_items(v.version_rows(s, ds.id, 1, fields=diversity.VERSION_FIELDS))
        assert v.version_diversity(s, ds.id, 1, sample_rows=30) == diversity.stored_form(
            diversity.report(every, rouge_sample=v.DIVERSITY_ROUGE_SAMPLE))
