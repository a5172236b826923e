"""A dataset's training settings and the gate's decisions over stored runs, on PostgreSQL.

The settings are checked when they are set (the trainer's parameters against its model,
the gate's tag and tolerances, the destinations' owner) and freeze the evaluation tasks by
content. The decisions are those of `training_gate.decide` on given metrics (the training
itself is exercised by the integration test with real runs): the first run promotes, a
run not worse within the tolerance moves the tag, a worse one holds it, an older version's
run never moves the tag back, runs on other evaluation tasks are not compared, and a
decision is made once."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from app.core.datasets import tags
from app.core.datasets import versions as v
from app.core.handoff import dataset_settings, training_gate
from app.core.handoff.dataset_settings import GateSettings, SettingsError
from app.db import session_scope
from app.models import DatasetTrainingRun, Destination, Job
from tests.dataset_handoff_fixtures import EVAL_TASKS, SKY, SKY_ROWS, commit, make_dataset

GOOD = {"eval_loss_after": 1.0, "rouge_l_after": 0.5}


@pytest.fixture
def dataset_id(pg_url):
    with session_scope(pg_url) as session:
        return make_dataset(session, "sky").id


def _settings(session, dataset_id, tmp_path, **kw):
    dataset = v.get_dataset_by_id(session, dataset_id)
    return dataset_settings.set_training(session, dataset, params=kw.pop("params", {"max_steps": 5}),
                                         gate=kw.pop("gate", None), data_dir=tmp_path, **kw)


def test_training_settings_freeze_the_evaluation_tasks_by_content(pg_url, dataset_id, tmp_path):
    with session_scope(pg_url) as session:
        default = _settings(session, dataset_id, tmp_path)
        given = _settings(session, dataset_id, tmp_path, eval_tasks=EVAL_TASKS, eval_source="a test")
        again = _settings(session, dataset_id, tmp_path, eval_tasks=EVAL_TASKS)
        dataset = v.get_dataset_by_id(session, dataset_id)
        stored = dataset_settings.training_of(dataset)
        params = dataset_settings.run_params(stored, dataset, 3)
    # by default: the recipe's seed sets' instances with an output
    assert default.eval.tasks == 3 and "seed set" in default.eval.source
    assert json.loads(Path(default.eval.path).read_text())[0] == {"instruction": "Seed task 0: what color is the sky?",
                                                                  "input": "", "output": SKY}
    assert given.eval.sha256 == again.eval.sha256 != default.eval.sha256 and given.eval.path == again.eval.path
    assert json.loads(Path(given.eval.path).read_text()) == EVAL_TASKS
    assert stored == again and stored.gate == GateSettings(tag="prod")
    assert stored.gate.tolerance == {"eval_loss_after": 0.05, "rouge_l_after": 0.01}
    assert params == {
        "max_steps": 5, "dataset": "sky", "dataset_version": 3, "eval_tasks": given.eval.path,
        "held_out_file": given.eval.path}


@pytest.mark.parametrize("kwargs, message", [
    ({"params": {"lora_r": 0}}, "training.params.lora_r: Input should be greater than or equal to 1"),
    ({"params": {"learning_rat": 0.1}}, "training.params.learning_rat: Extra inputs are not permitted"),
    ({"params": {"eval_tasks": "x.json"}}, "training.params.eval_tasks: not settable here"),
    ({"params": {"held_out_file": "x.json"}}, "training.params.held_out_file: not settable here"),
    ({"params": {"dataset": "other"}}, "training.params.dataset: not settable here"),
    ({"eval_tasks": []}, "training.eval_tasks: no evaluation task"),
    ({"eval_tasks": [{"instruction": "Hi.", "output": " "}]}, r"training.eval_tasks\[0\]: needs a non-empty"),
])
def test_bad_training_settings_are_refused_naming_the_field(pg_url, dataset_id, tmp_path, kwargs, message):
    with session_scope(pg_url) as session, pytest.raises(SettingsError, match=message):
        _settings(session, dataset_id, tmp_path, **kwargs)
    with session_scope(pg_url) as session:
        assert v.get_dataset_by_id(session, dataset_id).training is None


def test_the_gate_is_checked_and_seed_sets_without_instances_need_tasks(pg_url, tmp_path):
    with pytest.raises(ValueError, match="'latest' moves by itself"):
        GateSettings(tag="latest")
    with pytest.raises(ValueError, match="unknown metric"):
        GateSettings(tolerance={"accuracy": 0.1})
    with pytest.raises(ValueError, match="cannot be negative"):
        GateSettings(tolerance={"eval_loss_after": -1})
    with session_scope(pg_url) as session:
        bare = make_dataset(session, "bare", instances=False)
        with pytest.raises(SettingsError, match="seed sets have no instance with an output"):
            dataset_settings.set_training(session, bare, params={}, gate=None, data_dir=tmp_path)
    with session_scope(pg_url) as session:
        ds = v.get_dataset_by_id(session, bare.id)
        with pytest.raises(SettingsError, match="base_model: must be 'default' or a path inside"):
            dataset_settings.set_training(session, ds, params={"base_model": "/etc"}, gate=None, data_dir=tmp_path,
                                          eval_tasks=EVAL_TASKS, data_root=tmp_path)


def test_destinations_are_the_owners_only(pg_url, dataset_id):
    with session_scope(pg_url) as session:
        mine = Destination(owner=None, name="mine", kind="folder", config={"path": "/srv/a"})
        theirs = Destination(owner="bob", name="theirs", kind="folder", config={"path": "/srv/b"})
        session.add_all([mine, theirs])
        session.flush()
        dataset = v.get_dataset_by_id(session, dataset_id)
        with pytest.raises(SettingsError, match=rf"destination_ids\[1\]: no destination with id {theirs.id}"):
            dataset_settings.set_destinations(session, dataset, [mine.id, theirs.id])
        assert dataset_settings.set_destinations(session, dataset, [mine.id, mine.id]) == [mine]
        assert [d.name for d in dataset_settings.destinations_of(session, dataset)] == ["mine"]
        assert dataset_settings.needs_handoff(session, dataset)
        dataset_settings.set_destinations(session, dataset, [])
        assert not dataset_settings.needs_handoff(session, dataset)


# --- decisions -------------------------------------------------------------------------------
def _run(session, dataset, number, sha="a" * 64, tolerance=None):
    job = Job(kind="sft", owner=None, status="running")
    session.add(job)
    session.flush()
    version = v.get_version(session, dataset.id, number)
    return training_gate.record_run(session, dataset, version, job.id, "prod",
                                    tolerance or {"eval_loss_after": 0.05, "rouge_l_after": 0.01}, sha)


def _prod(session, dataset_id):
    return tags.list_tags(session, dataset_id).get("prod")


def test_the_gate_promotes_the_first_run_and_a_run_not_worse_and_holds_a_worse_one(pg_url, dataset_id):
    with session_scope(pg_url) as session:
        dataset = v.get_dataset_by_id(session, dataset_id)
        for i in range(4):
            commit(session, dataset, SKY_ROWS[i * 2:i * 2 + 2])
        runs = [_run(session, dataset, n) for n in (1, 2, 3, 4)]
        first = training_gate.decide(session, runs[0].job_id, GOOD)
        assert first["promoted"] and first["decision"] == "promoted: the first run on these evaluation tasks"
        assert [r["verdict"] for r in first["table"]] == ["first run", "first run"] and _prod(session, dataset_id) == 1
        within = training_gate.decide(session, runs[1].job_id, {"eval_loss_after": 1.04, "rouge_l_after": 0.5})
        assert within["promoted"] and _prod(session, dataset_id) == 2
        assert within["baseline_version"] == 1 and within["baseline_job_id"] == runs[0].job_id
        assert [(r["metric"], r["verdict"]) for r in within["table"]] == \
            [("eval_loss_after", "within tolerance"), ("rouge_l_after", "equal")]
        worse = training_gate.decide(session, runs[2].job_id, {"eval_loss_after": 0.9, "rouge_l_after": 0.3})
        assert not worse["promoted"] and _prod(session, dataset_id) == 2
        assert worse["decision"] == "held: rouge_l_after worse; prod stays on version 2"
        assert worse["table"][1]["previous"] == 0.5 and worse["table"][1]["delta"] == pytest.approx(-0.2)
        nan = training_gate.decide(session, runs[3].job_id, {"eval_loss_after": float("nan"), "rouge_l_after": 0.9})
        assert not nan["promoted"] and "eval_loss_after missing" in nan["decision"]  # a diverged run holds
        stored = session.get(DatasetTrainingRun, runs[3].id)
        assert stored.metrics["eval_loss_after"] is None and stored.decided_at is not None
        # decided once: asking again changes nothing
        assert training_gate.decide(session, runs[2].job_id, GOOD) == worse
        assert training_gate.decide(session, 999_999, GOOD) is None  # not a gated run


def test_an_older_versions_run_never_moves_the_tag_back_and_other_tasks_are_not_compared(pg_url, dataset_id):
    with session_scope(pg_url) as session:
        dataset = v.get_dataset_by_id(session, dataset_id)
        for i in range(3):
            commit(session, dataset, SKY_ROWS[i * 2:i * 2 + 2])
        r1, r2, r3 = (_run(session, dataset, n) for n in (1, 2, 3))
        training_gate.decide(session, r1.job_id, GOOD)
        training_gate.decide(session, r3.job_id, GOOD)  # version 3's run ends first
        late = training_gate.decide(session, r2.job_id, {"eval_loss_after": 0.1, "rouge_l_after": 0.9})
        assert not late["promoted"] and late["decision"].startswith("superseded: prod points at version 3")
        assert _prod(session, dataset_id) == 3
        commit(session, dataset, SKY_ROWS[6:8])
        other = _run(session, dataset, 4, sha="b" * 64)  # the evaluation tasks changed: nothing to compare with
        fresh = training_gate.decide(session, other.job_id, {"eval_loss_after": 9.0, "rouge_l_after": 0.0})
        assert fresh["promoted"] and fresh["baseline_job_id"] is None and _prod(session, dataset_id) == 4
        shown = training_gate.latest_runs(session, [r2.version_id, other.version_id])
        assert shown[r2.version_id]["gate"]["promoted"] is False and shown[other.version_id]["status"] == "running"
        assert training_gate.verdict_line(shown[other.version_id]).startswith(f"job {other.job_id} running: promoted")
