"""`sprout datasets ...` on the real PostgreSQL: create from seed files and step options or a
recipe file, list and show; versions committed through the core read back as versions,
diffs and exports; tags and rollback; removal making new versions and leaving old ones
byte-identical; schedules; and every refusal as one line with nothing written."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import func
from sqlmodel import select
from typer.testing import CliRunner

from app.cli import cli
from app.cli.common import CliError
from app.cli.datasets import parse_step
from app.core.datasets import export as ds_export
from app.core.datasets import versions as v
from app.db import session_scope
from app.models import Dataset, DatasetExample, DatasetTag, DatasetVersion, SeedSet, SeedTask
from tests.dataset_fixtures import examples
from tests.service_fixtures import api_settings, client  # noqa: F401

runner = CliRunner()
TABLES = (SeedSet, SeedTask, Dataset, DatasetVersion, DatasetExample, DatasetTag)
SEEDS = "".join(
    json.dumps({"instruction": f"Seed task number {i} asks for something.",
                "instances": [{"input": "", "output": f"answer {i}"}]}) + "\n"
    for i in range(6)
)


@pytest.fixture
def db(pg_url, monkeypatch):
    monkeypatch.setenv("SPROUT_DATABASE_URL", pg_url)
    monkeypatch.setenv("COLUMNS", "200")
    return pg_url


@pytest.fixture
def seeds(tmp_path):
    path = tmp_path / "seeds.jsonl"
    path.write_text(SEEDS)
    return path


def run(*args: str) -> str:
    result = runner.invoke(cli, ["datasets", *args])
    assert result.exit_code == 0, (result.output, result.exception)
    return " ".join(result.output.split())


def error_of(*args: str) -> str:
    result = runner.invoke(cli, ["datasets", *args])
    assert result.exit_code != 0
    assert isinstance(result.exception, CliError), (result.exception, result.output)
    assert "\n" not in str(result.exception)
    return str(result.exception)


def counts(url: str) -> dict[str, int]:
    with session_scope(url) as s:
        return {t.__tablename__: s.exec(select(func.count()).select_from(t)).one() for t in TABLES}


def commit(url: str, name: str, rows: list) -> None:
    with session_scope(url) as s:
        v.commit_version(s, v.get_dataset(s, None, name), rows)


def core_export(url: str, name: str, number: int, fmt: str) -> bytes:
    with session_scope(url) as s:
        ds = v.get_dataset(s, None, name)
        return "".join(ds_export.export_chunks(s, ds.id, number, fmt)).encode("utf-8")


def make(seeds, name: str = "support-sft", *extra: str) -> str:
    return run("create", name, "--seeds", str(seeds), "--grow-by", "20", *extra)


# --- create, list, show ----------------------------------------------------------------------------------
def test_create_from_seed_files_and_step_options(db, seeds, tmp_path):
    second = tmp_path / "more.jsonl"
    second.write_text(SEEDS.replace("Seed task", "Another task"))
    out = run("create", "support-sft", "--seeds", str(seeds), "--seeds", str(second), "--grow-by", "50",
              "--step", "self-instruct:temperature=0.5,blacklist=[\"image\",\"graph\"]",
              "--then", "evol_instruct:rounds=1,judge_unparseable=keep", "--format", "messages", "--format", "alpaca",
              "--size-cap", "1000", "--min-yield", "0.2", "--description", "Support answers.", "--license", "mit")
    assert "dataset 'support-sft' created: self_instruct -> evol_instruct, 50 new examples a build" in out
    assert "12 seed tasks imported from seeds.jsonl, more.jsonl" in out

    shown = json.loads(runner.invoke(cli, ["datasets", "show", "support-sft", "--json"]).output)
    recipe = shown["recipe"]
    assert recipe["steps"] == [
        {"kind": "self_instruct", "params": {"temperature": 0.5, "blacklist": ["image", "graph"]}, "source": "seeds"},
        {"kind": "evol_instruct", "params": {"rounds": 1, "judge_unparseable": "keep"}, "source": "previous"},
    ]
    assert (recipe["grow_by"], recipe["export_formats"], recipe["size_cap"], recipe["min_yield_share"]) == (
        50, ["messages", "alpaca"], 1000, 0.2)
    assert (shown["description"], shown["license"], shown["latest"], shown["tags"]) == ("Support answers.", "mit",
                                                                                       None, {})
    with session_scope(db) as s:
        sets = s.exec(select(SeedSet).order_by(SeedSet.id)).all()
        assert [x.id for x in sets] == recipe["seed_set_ids"] and all(x.owner is None for x in sets)
        assert s.exec(select(Dataset)).one().owner == v.LOCAL_OWNER

    # an existing seed set, and a recipe file
    recipe_file = tmp_path / "recipe.json"
    recipe_file.write_text(json.dumps({"steps": [{"kind": "self_instruct"}], "grow_by": 5,
                                       "export_formats": ["prompt-completion"]}))
    run("create", "from-file", "--recipe", str(recipe_file), "--seed-set", str(sets[0].id))
    from_file = json.loads(runner.invoke(cli, ["datasets", "show", "from-file", "--json"]).output)["recipe"]
    assert from_file["seed_set_ids"] == [sets[0].id] and from_file["export_formats"] == ["prompt-completion"]

    listed = json.loads(runner.invoke(cli, ["datasets", "list", "--json"]).output)
    assert [d["name"] for d in listed] == ["from-file", "support-sft"]
    commit(db, "support-sft", examples(3))
    assert "support-sft │ 1 │ 3 │" in run("list")
    shown = run("show", "support-sft")
    assert "latest: version 1: 3 examples" in shown and "tags: latest=1" in shown
    assert "steps: self_instruct" in shown and "-> evol_instruct" in shown


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["--then", "self_instruct"], "steps[1].source: self_instruct cannot take the previous step's output"),
        (["--step", "magic"], "steps[0].kind: unknown job kind 'magic'"),
        (["--step", "sft"], "steps[0].kind: sft makes no examples"),
        (["--step", "self_instruct:temperature=9"], "steps[0].params.temperature: Input should be less than or equal to 2"),
        (["--step", "self_instruct:temperature"], "expected key=value after the kind"),
        (["--step", ":rounds=1"], "name a job kind"),
        (["--format", "parquet"], "export_formats[0]: Input should be 'alpaca'"),
        (["--size-cap", "0"], "size_cap: Input should be greater than or equal to 1"),
        (["--seed-set", "424242"], "recipe.seed_set_ids[0]: no seed set with id 424242"),
        (["--seed-set", str(2**40)], f"recipe.seed_set_ids[0]: no seed set with id {2**40}"),
        (["--recipe", "RECIPE"], "give one or the other"),
    ],
)
def test_bad_create_is_one_line_and_writes_nothing(db, seeds, tmp_path, args, fragment):
    args = [str(tmp_path / "r.json") if a == "RECIPE" else a for a in args]
    before = counts(db)
    assert fragment in error_of("create", "support-sft", "--seeds", str(seeds), "--grow-by", "20", *args)
    assert counts(db) == before


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["support-sft", "--grow-by", "5"], "give the seeds"),
        (["support-sft", "--seeds", "SEEDS"], "--grow-by is required"),
        (["bad name", "--seeds", "SEEDS", "--grow-by", "5"], "dataset name 'bad name' is invalid"),
        (["support-sft", "--seeds", "/nonexistent/seeds.jsonl", "--grow-by", "5"], "/nonexistent/seeds.jsonl"),
        (["support-sft", "--seeds", "SEEDS", "--recipe", "/nonexistent/r.json"], "--recipe /nonexistent/r.json"),
        (["support-sft", "--seeds", "SEEDS", "--recipe", "NOT_JSON"], "not a JSON file"),
        (["support-sft", "--seeds", "SEEDS", "--recipe", "LIST"], "must be a JSON object"),
        (["support-sft", "--seeds", "SEEDS", "--recipe", "BAD_STEP"], "steps[0].source: the first step must take"),
    ],
)
def test_more_bad_create_input(db, seeds, tmp_path, args, fragment):
    files = {"NOT_JSON": "{not json", "LIST": "[1, 2]",
             "BAD_STEP": json.dumps({"steps": [{"kind": "evol_instruct", "source": "previous"}], "grow_by": 5})}
    for key, text in files.items():
        (tmp_path / key).write_text(text)
    args = [str(seeds) if a == "SEEDS" else str(tmp_path / a) if a in files else a for a in args]
    before = counts(db)
    assert fragment in error_of("create", *args)
    assert counts(db) == before


def test_a_duplicate_name_and_unknown_datasets_are_one_line(db, seeds, tmp_path):
    make(seeds)
    before = counts(db)
    assert "a dataset named 'support-sft' already exists" in error_of(
        "create", "support-sft", "--seeds", str(seeds), "--grow-by", "5")
    assert counts(db) == before  # the seed file of the refused dataset was not kept
    for args in (["show", "nope"], ["build", "nope"], ["versions", "nope"], ["diff", "nope", "1", "2"],
                 ["export", "nope", "--out", str(tmp_path / "x.jsonl")], ["tag", "nope", "prod", "1"],
                 ["schedule", "nope", "--show"], ["pause", "nope"], ["resume", "nope"], ["remove", "nope", "--ids", "1"]):
        assert error_of(*args) == "no dataset named 'nope'", args


def test_parse_step_keeps_json_values_whole():
    step = parse_step('evol-instruct:rounds=2,operations={"deepening": 1, "in_breadth": 2},seed=7', "previous", "--then")
    assert step == {"kind": "evol_instruct", "params": {"rounds": 2, "operations": {"deepening": 1, "in_breadth": 2},
                                                        "seed": 7}, "source": "previous"}
    assert parse_step("self_instruct", "seeds", "--step") == {"kind": "self_instruct", "params": {}, "source": "seeds"}
    assert parse_step("self_instruct:dedup_namespace=team a", "seeds", "--step")["params"] == {
        "dedup_namespace": "team a"}


# --- versions, diff, export, tags ----------------------------------------------------------------------------
def test_versions_diff_export_and_tags(db, seeds, tmp_path):
    make(seeds, "support-sft", "--format", "alpaca", "--format", "messages")
    commit(db, "support-sft", examples(4))
    commit(db, "support-sft", examples(3, start=4, method="evol_instruct"))

    listed = json.loads(runner.invoke(cli, ["datasets", "versions", "support-sft", "--json"]).output)
    assert [(x["number"], x["row_count"], x["tags"]) for x in listed] == [(2, 7, ["latest"]), (1, 4, [])]
    assert "support-sft: 2 version(s)" in run("versions", "support-sft")

    out = run("diff", "support-sft", "1", "2", "--rows", "2")
    assert "support-sft: version 1 -> 2: +3 added, -0 removed, 0 corrected" in out
    assert "added by method: evol_instruct 3" in out and out.count("+ #") == 2
    assert "+0 added, -3 removed" in run("diff", "support-sft", "latest", "1")
    assert error_of("diff", "support-sft", "1", "9") == "the dataset has no version 9"

    for target, number, fmt in (("support-sft@1", 1, "messages"), ("support-sft", 2, "alpaca"),
                                ("support-sft@latest", 2, "prompt-completion")):
        path = tmp_path / f"{number}-{fmt}.out"
        args = ["export", target, "--out", str(path)] + (["--format", fmt] if fmt != "alpaca" else [])
        assert f"wrote support-sft version {number}" in run(*args)  # alpaca: the recipe's first format
        assert path.read_bytes() == core_export(db, "support-sft", number, fmt)
    assert "--format: unknown export format 'csv'" in error_of("export", "support-sft", "--format", "csv", "--out",
                                                               str(tmp_path / "x"))
    assert error_of("export", "support-sft@prod", "--out", str(tmp_path / "x")) == "the dataset has no tag 'prod'"

    assert "support-sft tags: latest=2, prod=1" in run("tag", "support-sft", "prod", "1")
    assert "latest=2, prod=2" in run("tag", "support-sft", "prod", "latest")
    assert "latest=2, prod=1" in run("tag", "support-sft", "prod", "1")  # the rollback
    rolled = tmp_path / "prod.jsonl"
    run("export", "support-sft@prod", "--format", "messages", "--out", str(rolled))
    assert rolled.read_bytes() == core_export(db, "support-sft", 1, "messages")

    before = counts(db)
    assert error_of("tag", "support-sft", "prod", "9") == "the dataset has no version 9"
    assert "moves by itself" in error_of("tag", "support-sft", "latest", "1")
    assert "not only digits" in error_of("tag", "support-sft", "42", "1")
    assert "or --delete" in error_of("tag", "support-sft", "prod")
    assert counts(db) == before
    assert run("tag", "support-sft", "prod", "--delete") == "support-sft tags: latest=2"
    assert error_of("tag", "support-sft", "prod", "--delete") == "the dataset has no tag 'prod'"


# --- removal ------------------------------------------------------------------------------------------------
def test_remove_makes_new_versions_and_leaves_old_ones_byte_identical(db, seeds, tmp_path):
    make(seeds)
    commit(db, "support-sft", examples(6))
    with session_scope(db) as s:
        ds = v.get_dataset(s, None, "support-sft")
        rows = list(v.version_rows(s, ds.id, 1))
        short = v.NewExample(instruction="Too short.", input="", output="x", method="self_instruct")
        v.commit_version(s, ds, [short])
    before = {n: {fmt: core_export(db, "support-sft", n, fmt) for fmt in ("alpaca", "messages")} for n in (1, 2)}
    with session_scope(db) as s:
        hashes = {n: v.get_version(s, ds.id, n).content_hash for n in (1, 2)}

    out = run("remove", "support-sft", "--ids", f"{rows[0]['id']},{rows[2]['id']}", "--dry-run")
    assert "would remove 2 example(s) from version 2, leaving 5" in out
    assert "support-sft version 3: 2 example(s) removed, 5 left" in run(
        "remove", "support-sft", "--ids", f"{rows[0]['id']},{rows[2]['id']}", "--expected-latest", "2")
    assert "version 4: 1 example(s) removed, 4 left" in run("remove", "support-sft", "--rule", "too_short")
    assert "version 5: 1 example(s) removed, 3 left" in run("remove", "support-sft", "--contains", "ÉTAPE 3 ")

    with session_scope(db) as s:
        for n in (1, 2):  # the old versions read as they did
            assert v.get_version(s, ds.id, n).content_hash == hashes[n] == v.content_hash(s, ds.id, n)
        assert [r["id"] for r in v.version_rows(s, ds.id, 5)] == [rows[i]["id"] for i in (1, 4, 5)]
    assert {n: {fmt: core_export(db, "support-sft", n, fmt) for fmt in ("alpaca", "messages")} for n in (1, 2)} == before

    snapshot = counts(db)
    assert "version 2 is not the latest" in error_of("remove", "support-sft", "--ids", str(rows[1]["id"]),
                                                     "--expected-latest", "2")
    assert f"example(s) {rows[0]['id']}" in error_of("remove", "support-sft", "--ids", str(rows[0]["id"]))
    assert "--ids: comma-separated example ids" in error_of("remove", "support-sft", "--ids", "a,b")
    assert "--ids: comma-separated example ids (1 to" in error_of("remove", "support-sft", "--ids", str(2**40))
    assert "unknown rule(s) too_clever" in error_of("remove", "support-sft", "--rule", "too_clever")
    assert "nothing to remove" in error_of("remove", "support-sft", "--contains", "no such text anywhere")
    assert "name the examples to remove" in error_of("remove", "support-sft")
    assert counts(db) == snapshot


# --- schedule ---------------------------------------------------------------------------------------------------
def test_schedule_show_pause_resume_clear(db, seeds):
    make(seeds)
    assert "support-sft: no schedule" in run("schedule", "support-sft")
    out = run("schedule", "support-sft", "--cron", "0 3 * * *", "--tz", "Europe/Paris", "--missed", "run_once")
    assert "support-sft: 0 3 * * * in Europe/Paris, missed fires: run_once, active" in out
    assert out.count("next fire:") == 5 and ("03:00 CET" in out or "03:00 CEST" in out)
    assert "support-sft: 0 3 * * * in Europe/Paris" in run("schedule", "support-sft", "--show")
    assert "schedule: 0 3 * * * (Europe/Paris)" in run("show", "support-sft")

    assert "schedule paused (holiday freeze)" in run("pause", "support-sft", "--reason", "holiday freeze")
    shown = run("schedule", "support-sft", "--show")
    assert "paused: holiday freeze" in shown and "next fire" not in shown
    assert "paused: holiday freeze" in run("list")
    assert "schedule resumed; next fire" in run("resume", "support-sft")

    before = run("schedule", "support-sft", "--show")
    assert "cron: '0 3 * *' has 4 fields" in error_of("schedule", "support-sft", "--cron", "0 3 * *")
    assert "timezone: unknown time zone 'Mars/Olympus'" in error_of("schedule", "support-sft", "--cron", "@daily",
                                                                    "--tz", "Mars/Olympus")
    assert "missed_fire_policy: 'later' is not one of skip, run_once" in error_of(
        "schedule", "support-sft", "--cron", "@daily", "--missed", "later")
    assert "give one of --cron, --show, --clear" in error_of("schedule", "support-sft", "--show", "--clear")
    assert run("schedule", "support-sft", "--show") == before  # nothing written

    assert "support-sft: no schedule" in run("schedule", "support-sft", "--clear")
    assert "has no schedule to pause" in error_of("pause", "support-sft")
    assert "has no schedule to resume" in error_of("resume", "support-sft")


def test_owner_makes_a_command_line_dataset_an_api_key_owners(db, seeds, client, pg_url):
    """The ownership rule: `--owner` (or SPROUT_OWNER) acts as an API key's owner, whose seed
    sets `--seed-set` may take and whose dashboard then shows the dataset; without it the
    dataset is the local owner's, which no key sees."""
    from tests.service_fixtures import Api, make_key

    alice = Api(client, make_key(pg_url, "alice"))
    uploaded = alice.ok("post", "/api/v1/seed-sets", 201, json={"name": "mine", "content": SEEDS})["id"]
    refused = error_of("create", "local", "--seed-set", str(uploaded), "--grow-by", "5")
    assert refused == (f"--seed-set {uploaded}: the seed set belongs to API key owner 'alice'; pass --owner alice "
                       "to make the dataset theirs")
    run("--owner", "alice", "create", "shared", "--seed-set", str(uploaded), "--seeds", str(seeds), "--grow-by", "5")
    run("create", "local-only", "--seeds", str(seeds), "--grow-by", "5")
    listed = alice.ok("get", "/api/v1/datasets")
    assert [d["name"] for d in listed["items"]] == ["shared"]
    recipe = alice.ok("get", "/api/v1/datasets/shared")["recipe"]
    with session_scope(db) as s:
        owners = {x.id: x.owner for x in s.exec(select(SeedSet)).all()}
    assert [owners[i] for i in recipe["seed_set_ids"]] == ["alice", "alice"]  # the file imported is hers too
    assert "shared" in run("--owner", "alice", "list") and "shared" not in run("list")
    assert "local-only" in run("list")
    assert error_of("--owner", " ", "list").startswith("--owner must be")
