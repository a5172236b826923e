"""`sprout datasets check|bundle|deliver|handoff` on PostgreSQL, and the CLI's in-process
hand-off of a new version: delivered to a folder, `version_created` sent to a local
receiver, and a real LoRA run of the tiny model on the version, gated (the first run
promotes `prod`), shown by `versions` and `show`."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from app.cli import cli
from app.cli.common import CliError
from app.core.datasets import versions as v
from app.core.handoff import webhooks
from app.db import session_scope
from tests.dataset_handoff_fixtures import EVAL_TASKS, GARBLED_ROWS, SKY_ROWS, commit, make_dataset, train_params
from tests.handoff_fixtures import tiny_model_dir  # noqa: F401
from tests.webhook_receiver import WebhookReceiver

runner = CliRunner()


@pytest.fixture
def db(pg_url, monkeypatch, tiny_model_dir):
    monkeypatch.setenv("SPROUT_DATABASE_URL", pg_url)
    monkeypatch.setenv("SPROUT_HANDOFF__TOKENIZER", str(tiny_model_dir))
    monkeypatch.setenv("SPROUT_HANDOFF__MAX_LENGTH", "256")
    monkeypatch.setenv("SPROUT_HANDOFF__FORMATS", '["sharegpt", "messages"]')
    monkeypatch.setenv("COLUMNS", "250")
    with session_scope(pg_url) as session:
        commit(session, make_dataset(session, "sky"), GARBLED_ROWS + SKY_ROWS[:4])
    return pg_url


def run(*args) -> str:
    result = runner.invoke(cli, [str(a) for a in args])
    assert result.exit_code == 0, (result.output, result.exception)
    return " ".join(result.output.split())


def error_of(*args) -> str:
    result = runner.invoke(cli, [str(a) for a in args])
    assert result.exit_code != 0 and isinstance(result.exception, CliError), (result.output, result.exception)
    assert "\n" not in str(result.exception)
    return str(result.exception)


def _add_empty_answer(url) -> int:
    with session_scope(url) as session:
        dataset = v.get_dataset(session, None, "sky")
        commit(session, dataset, [{"instruction": "Say nothing at all.", "input": "", "output": ""}])
        return list(v.version_rows(session, dataset.id, 2))[-1]["id"]


def test_check_passes_a_clean_version_and_names_the_rows_of_a_failing_one(db):
    assert "sky version 1 (12 rows)" in run("datasets", "check", "sky@1") and "preflight passed: 12 rows" in \
        run("datasets", "check", "sky@1")
    bad_id = _add_empty_answer(db)
    result = runner.invoke(cli, ["datasets", "check", "sky"])
    assert result.exit_code == 1
    text = " ".join(result.output.split())
    assert f"empty_output: row 12 (id {bad_id}): the output (the assistant turn) is empty" in text
    assert "preflight failed: empty_output (1)" in text
    report = json.loads(runner.invoke(cli, ["datasets", "check", "sky@latest", "--json"]).output)
    assert report["ok"] is False and report["problems"][0]["id"] == bad_id
    assert error_of("datasets", "check", "sky@9") == "the dataset has no version 9"
    assert error_of("datasets", "check", "nope") == "no dataset named 'nope'"


def test_bundle_and_deliver_a_version(db, tmp_path):
    out = run("datasets", "bundle", "sky@1", "--out", tmp_path / "b")
    assert "wrote the bundle of sky version 1 (12 rows)" in out and "preflight passed" in out
    assert sorted(p.name for p in (tmp_path / "b").iterdir()) == [
        "README.md", "axolotl.yaml", "dataset_info.json", "manifest.json", "messages.jsonl", "preflight.json",
        "sharegpt.jsonl"]
    run("handoff", "destinations", "add", "cluster", "--folder", tmp_path / "shared")
    delivered = run("datasets", "deliver", "sky", "--to", "cluster")
    assert "done (12 rows, v1)" in delivered and (tmp_path / "shared" / "sky" / "v1" / "README.md").is_file()
    _add_empty_answer(db)
    message = error_of("datasets", "deliver", "sky", "--to", "cluster")
    assert "blocked: preflight failed: empty_output (1)" in message and not (tmp_path / "shared" / "sky" / "v2").exists()
    assert "already exists" in error_of("datasets", "bundle", "sky@1", "--out", tmp_path / "b")
    assert "no destination named 'hub'" in error_of("datasets", "deliver", "sky", "--to", "hub")


def test_the_hand_off_settings_from_the_command_line(db, tmp_path, tiny_model_dir):
    run("handoff", "destinations", "add", "cluster", "--folder", tmp_path / "shared")
    tasks = tmp_path / "tasks.json"
    tasks.write_text(json.dumps(EVAL_TASKS))
    out = run("datasets", "handoff", "sky", "--to", "cluster", "--train", "--param", f"base_model={tiny_model_dir}",
              "--param", "max_steps=20", "--tolerance", "rouge_l_after=0.02", "--eval-file", tasks)
    assert "new versions are delivered to: cluster (folder)" in out
    assert '"max_steps": 20' in out and "gate tag prod, tolerance eval_loss_after=0.05, rouge_l_after=0.02" in out
    assert f"evaluation tasks: 4 from file {tasks}" in out
    shown = json.loads(runner.invoke(cli, ["datasets", "show", "sky", "--json"]).output)
    assert shown["handoff"]["destinations"][0]["name"] == "cluster" and shown["handoff"]["training"]["eval"]["tasks"] == 4
    assert "--param, --gate-tag, --tolerance and --eval-file go with --train" in \
        error_of("datasets", "handoff", "sky", "--param", "max_steps=3")
    assert "training.params.lora_r: Input should be greater than or equal to 1" in \
        error_of("datasets", "handoff", "sky", "--train", "--param", "lora_r=0", "--eval-file", tasks)
    assert "no destination named 'nope'" in error_of("datasets", "handoff", "sky", "--to", "nope")
    assert "--tolerance accuracy=1: the metric must be one of" in \
        error_of("datasets", "handoff", "sky", "--train", "--tolerance", "accuracy=1")
    assert "NAME@REF goes with --now" in error_of("datasets", "handoff", "sky@1")
    after = json.loads(runner.invoke(cli, ["datasets", "handoff", "sky", "--json"]).output)
    assert after["training"]["params"]["max_steps"] == 20  # the refused changes changed nothing
    cleared = run("datasets", "handoff", "sky", "--no-destinations", "--no-train")
    assert "delivered to: none" in cleared and "training on new versions: off" in cleared


def test_a_version_handed_off_now_is_delivered_announced_trained_and_gated(db, tmp_path, tiny_model_dir):
    run("handoff", "destinations", "add", "cluster", "--folder", tmp_path / "shared")
    tasks = tmp_path / "tasks.json"
    tasks.write_text(json.dumps(EVAL_TASKS))
    params = [a for key, value in train_params(str(tiny_model_dir)).items() for a in ("--param", f"{key}={value}")]
    run("datasets", "handoff", "sky", "--to", "cluster", "--train", *params, "--eval-file", tasks)
    assert "url: must be an http:// or https:// URL" in error_of("handoff", "webhooks", "add", "ftp://x",
                                                                 "--event", "version_created")
    assert "events: must be some of" in error_of("handoff", "webhooks", "add", "http://x", "--event", "nope")
    with WebhookReceiver() as receiver:
        added = run("handoff", "webhooks", "add", receiver.url, "--event", "version_created", "--event",
                    "training_finished", "--secret", "s" * 32)
        assert f"secret (shown once): {'s' * 32}" in added and receiver.url in run("handoff", "webhooks", "list")
        out = run("datasets", "handoff", "sky@1", "--now")
    assert "delivery 1 to cluster: done" in out and "version_created sent to 1 webhook(s)" in out
    assert "gate prod: promoted: the first run on these evaluation tasks" in out
    assert (tmp_path / "shared" / "sky" / "v1" / "manifest.json").is_file()
    events = {json.loads(r.body)["event"]: json.loads(r.body) for r in receiver.received}
    assert set(events) == {"version_created", "training_finished"}
    assert all(webhooks.verify("s" * 32, r.body, r.headers["X-Sprout-Signature"]) for r in receiver.received)
    assert events["version_created"]["data"]["version"]["number"] == 1
    finished = events["training_finished"]["data"]
    assert finished["dataset"] == {"id": finished["dataset"]["id"], "name": "sky", "version": 1}
    assert finished["gate"]["promoted"] is True and finished["metrics"]["steps"] == 20
    [version] = json.loads(runner.invoke(cli, ["datasets", "versions", "sky", "--json"]).output)
    assert version["tags"] == ["latest", "prod"] and version["training"]["gate"]["promoted"] is True
    assert version["training"]["metrics"]["held_out_rows"] == 4  # the evaluation tasks, held out
    assert "latest training: job" in run("datasets", "show", "sky") and "promoted" in run("datasets", "versions", "sky")
    # asked again: what was done is not done twice
    again = run("datasets", "handoff", "sky@1", "--now")
    assert "version_created sent to 0 webhook(s)" in again and "delivery 1 to cluster: done" in again


def test_a_removal_is_handed_off_like_a_build(db, tmp_path):
    run("handoff", "destinations", "add", "cluster", "--folder", tmp_path / "shared")
    run("datasets", "handoff", "sky", "--to", "cluster")
    with session_scope(db) as session:
        first = list(v.version_rows(session, v.get_dataset(session, None, "sky").id, 1))[0]["id"]
    out = run("datasets", "remove", "sky", "--ids", first)
    assert "sky version 2: 1 example(s) removed, 11 left" in out and "delivery 1 to cluster: done" in out
    assert json.loads((tmp_path / "shared" / "sky" / "latest.json").read_text())["label"] == "v2"
