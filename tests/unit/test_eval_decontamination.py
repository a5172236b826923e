"""The evaluation tasks the trainer scores are checked by every generation job: the trainer's
default tasks (the default seed tasks), the configured ones, and a dataset build step's own
frozen tasks; off with `decontaminate_eval_tasks`; an unreadable file is a clear error."""

from __future__ import annotations

import json

import pytest

from app.core import jobs, store
from app.core.filters.decontaminate import screen
from app.core.handoff import dataset_settings
from app.core.jobs.decontamination import benchmark_index, checked_against, contamination_report, eval_task_files
from app.core.methods.candidates import CandidateRecord, InstanceCandidate, JobInputError
from app.core.seeds import load_seed_file
from app.core.training.evaluate import default_eval_tasks_path
from app.db import session_scope
from app.settings import Settings
from tests.dataset_fixtures import make_dataset

CONFIG = Settings().core_config()


def params(**values):
    return jobs.get("self_instruct").validate_params(values, CONFIG.defaults)


def default_instance():
    """The first default seed task with an input: (instruction, input, output)."""
    _, tasks = load_seed_file(default_eval_tasks_path())
    task = next(t for t in tasks if t.instances and t.instances[0]["input"])
    return task.instruction, task.instances[0]["input"], task.instances[0]["output"]


def test_on_by_default_against_the_trainers_default_tasks(sqlite_url):
    assert params().decontaminate_eval_tasks is True
    with session_scope(sqlite_url) as session:
        found = eval_task_files(session, None, params(), CONFIG)
        assert [t.path for t in found] == [default_eval_tasks_path()]
        assert found[0].label == f"eval tasks: {default_eval_tasks_path().name} (the trainer's default)"
        assert eval_task_files(session, None, params(decontaminate_eval_tasks=False), CONFIG) == []
        assert benchmark_index(session, params(decontaminate_eval_tasks=False), CONFIG) is None
        assert checked_against(session, None, params(), CONFIG) == {"benchmark_sets": [],
                                                                     "eval_tasks": [found[0].label]}


def test_a_copy_of_a_default_task_is_contaminated_and_a_shared_short_label_is_not(sqlite_url):
    instruction, given, output = default_instance()
    with session_scope(sqlite_url) as session:
        index = benchmark_index(session, params(), CONFIG)
    copied = CandidateRecord(f"{instruction.upper()}!", accepted=True,
                             instances=[InstanceCandidate(given, output)])
    assert screen(index, copied) == "contaminated"
    assert copied.detail["contamination"][0]["benchmark"].startswith("eval tasks: default.jsonl")
    # another task whose answer happens to be the same short label: kept
    other = CandidateRecord("Say whether the sentence below is written in the past tense.", accepted=True,
                            instances=[InstanceCandidate("I walked home.", output)])
    assert len(output.split()) < 8 and screen(index, other) is None and other.instances[0].rule is None


def test_the_configured_tasks_and_a_build_steps_dataset_tasks(sqlite_url, tmp_path):
    mine = tmp_path / "eval.jsonl"
    mine.write_text(json.dumps({"instruction": "Name the capital city of the country given below in one word.",
                                "instances": [{"input": "France", "output": "Paris"}]}) + "\n")
    config = Settings(train={"eval_tasks": str(mine)}).core_config()
    task = {"instruction": "Write a haiku about the first snow of the winter season in the mountains.",
            "input": "", "output": "White hush on the peaks"}
    with session_scope(sqlite_url) as session:
        dataset = make_dataset(session, owner=None)
        dataset_settings.set_training(session, dataset, params={}, gate=None, data_dir=tmp_path, eval_tasks=[task])
        seed_set = store.import_seed_set(session, "s", "jsonl", [])
        step = store.create_job(session, "self_instruct", params().model_dump(), seed_set_id=seed_set.id)
        step.result = {"build": {"dataset_id": dataset.id, "build_job_id": 1, "step": 1, "seed_set_ids": []}}
        session.flush()
        found = eval_task_files(session, step, params(), config)
        assert [t.path for t in found] == [mine, tmp_path / "handoff" / "eval" / f"{dataset.training['eval']['sha256']}.json"]
        assert found[1].label == f"eval tasks: dataset {dataset.name}"
        index = benchmark_index(session, params(), config, step)
        hit = index.check(task["instruction"])
        assert hit is not None and hit.benchmark == found[1].label
        assert index.check("Name the capital city of the country given below in one word.\nFrance").benchmark == \
            found[0].label
        assert index.check("Make a packing list for a three-day hiking trip in autumn.") is None  # not the default
        report = contamination_report(session, step.id, params(), checked_against(session, step, params(), config))
        assert report["eval_tasks"] == [t.label for t in found] and report["candidates_hit"] == 0


def test_an_unreadable_evaluation_file_names_the_parameter(sqlite_url, tmp_path):
    config = Settings(train={"eval_tasks": str(tmp_path / "missing.jsonl")}).core_config()
    with session_scope(sqlite_url) as session, pytest.raises(JobInputError, match="decontaminate_eval_tasks"):
        benchmark_index(session, params(), config)


def test_a_benchmark_sets_short_answer_is_not_matched_by_exact_copy_but_its_prompt_is(sqlite_url):
    from app.core.filters.decontaminate import BenchmarkItem

    with session_scope(sqlite_url) as session:
        bench = store.import_benchmark_set(session, "gsm-mini", "jsonl", [
            BenchmarkItem("gsm-mini", "q1", "How many legs do three spiders have?", "24")])
        index = benchmark_index(session, params(decontaminate_against=[bench.id], decontaminate_eval_tasks=False),
                                CONFIG)
    same_answer = CandidateRecord("Multiply six by four and give the product.", accepted=True,
                                  instances=[InstanceCandidate("", "24")])
    assert screen(index, same_answer) is None  # "24" answers many questions
    same_prompt = CandidateRecord("how many legs do THREE spiders have", accepted=True,
                                  instances=[InstanceCandidate("", "Twenty-four legs.")])
    assert screen(index, same_prompt) == "contaminated"
    assert same_prompt.detail["contamination"][0]["item"] == "q1"
