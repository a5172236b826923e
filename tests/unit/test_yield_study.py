"""The yield study's fixed parts (`benchmarks/yield_study.py`): the held-out third of the
Self-Instruct seed tasks, the judge's top half and the paired bootstrap. The stages that
need the model (generation, scoring, training) are not run here."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import random
from pathlib import Path

import pytest

from app.core.seeds import load_seed_file
from app.core.training.data import read_export
from tests.training_fixtures import TOY_ROWS, tiny_model_dir  # noqa: F401  (fixture)

ROOT = Path(__file__).resolve().parents[2]
REFERENCE = ROOT.parent / "shared" / "reference" / "self_instruct_seed_tasks.jsonl"


def _study():
    spec = importlib.util.spec_from_file_location("yield_study", ROOT / "benchmarks" / "yield_study.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


study = _study()


def _digest(ident: str) -> str:
    return hashlib.sha256(ident.encode("utf-8")).hexdigest()


def test_the_held_out_third_is_fixed_by_the_ids_alone():
    ids = [f"seed_task_{i}" for i in range(175)]
    held = study.held_out_ids(ids)
    assert len(held) == 58
    shuffled = ids[:]
    random.Random(3).shuffle(shuffled)
    assert study.held_out_ids(shuffled) == held  # not the file order
    assert max(_digest(i) for i in held) < min(_digest(i) for i in set(ids) - held)  # the smallest digests
    assert study.held_out_ids(ids[:6]) == {min(ids[:6], key=_digest), sorted(ids[:6], key=_digest)[1]}
    with pytest.raises(ValueError, match="unique"):
        study.held_out_ids(["a", "b", "a"])


def test_split_of_the_reference_seed_tasks(tmp_path):
    summary = study.stage_split(tmp_path, REFERENCE)
    assert (summary["tasks"], summary["train_tasks"], summary["held_out_tasks"]) == (175, 117, 58)
    tasks = [json.loads(line) for line in REFERENCE.read_text().splitlines() if line.strip()]
    held = {t["instruction"] for t in tasks if t["id"] in set(summary["held_out"])}

    _, seed_tasks = load_seed_file(tmp_path / "split" / "train_tasks.jsonl")  # what the generation job imports
    _, held_tasks = load_seed_file(tmp_path / "split" / "heldout_tasks.jsonl")  # the benchmark set
    assert len(seed_tasks) == 117 and len(held_tasks) == 58
    assert {t.instruction for t in held_tasks} == held and not held & {t.instruction for t in seed_tasks}
    assert sum(t.is_classification for t in seed_tasks + held_tasks) == 26

    _, test_rows = read_export(tmp_path / "split" / "heldout.json")  # the trainer's held-out file
    _, seed_rows = read_export(tmp_path / "split" / "seed_rows.json")  # arm (a)'s data
    assert len(test_rows) == 58 and len(seed_rows) == 117
    assert not {c[-2]["content"] for c in test_rows} & {c[-2]["content"] for c in seed_rows}

    (tmp_path / "split" / "heldout.json").write_text("[]")  # a rerun reuses the stage as it is
    assert study.stage_split(tmp_path, REFERENCE) == summary
    assert (tmp_path / "split" / "heldout.json").read_text() == "[]"


def test_judge_top_half_ranks_quality_then_complexity_and_keeps_the_order():
    rows = [{"instruction": f"task {i}", "input": "", "output": "x", "quality": q, "complexity": c}
            for i, (q, c) in enumerate([(3.0, 5.0), (5.5, 1.0), (None, 6.0), (4.0, 2.0), (4.0, 3.0)])]
    kept = study.judged_top_half(rows)
    assert [r["instruction"] for r in kept] == ["task 1", "task 3", "task 4"]  # 5.5, then the 4.0s; file order
    assert study.judged_top_half(rows[:4]) == [rows[1], rows[3]]
    same = [{**r, "quality": 4.0, "complexity": 2.0} for r in rows]  # all tied: the rows' sha256 decides
    kept = study.judged_top_half(same)
    assert len(kept) == 3 and kept == [r for r in same if r in kept]
    assert study.judged_top_half(same[::-1]) == kept[::-1]  # the same rows whatever their order


def test_paired_bootstrap_of_the_score_difference():
    base = [0.1, 0.2, 0.0, 0.5, 0.3]
    assert study.paired_bootstrap(base, base) == (0.0, 0.0, 0.0)
    mean, low, high = study.paired_bootstrap(base, [b + 0.1 for b in base])
    assert mean == pytest.approx(0.1) and low == pytest.approx(0.1) and high == pytest.approx(0.1)
    mean, low, high = study.paired_bootstrap([0.0] * 40, [0.0] * 20 + [1.0] * 20)
    assert mean == pytest.approx(0.5) and 0.3 < low < 0.5 < high < 0.7


def write_chat_generation(folder, rows):
    study.write_json(folder / "generate_chat" / "curated.json", rows)
    study.write_json(folder / "generate_chat" / "generate.json", {
        "job_id": 3, "status": "cancelled", "curated_instructions": 2, "rows": len(rows), "generated": 5,
        "rejected": {}, "instances_rejected": {}, "seconds": 30.0, "contamination": None,
        "roles": {"generator": {"dialect": "completions", "prompt_tokens": 100, "completion_tokens": 40},
                  "responder": {"dialect": "chat", "prompt_tokens": 300, "completion_tokens": 200}}})


def test_four_runs_and_the_table_on_a_tiny_model(tiny_model_dir, tmp_path):
    """The train and table stages from the stages' files, on the trainer's tiny random model:
    one budget for the four runs, the base measured once, the judge's half trained on, the
    chat path's rows in run (d)."""
    study.stage_split(tmp_path, REFERENCE)
    curated = [{"id": i // 2, "instruction": row["instruction"], "input": row["input"], "output": row["output"]}
               for i, row in enumerate(TOY_ROWS)]
    study.write_json(tmp_path / "generate" / "curated.json", curated)
    study.write_json(tmp_path / "generate" / "generate.json", {
        "job_id": 1, "status": "succeeded", "curated_instructions": 4, "rows": len(curated), "generated": 9,
        "rejected": {"contaminated": 1}, "instances_rejected": {"contaminated": 2}, "seconds": 12.0,
        "contamination": {"benchmarks": {"heldout (#1)": {"items_hit": 2, "hits": 3}}}})
    write_chat_generation(tmp_path, curated[:6])
    qualities = [5.0, 1.0, 4.5, 2.0, None, 3.0, 6.0, 4.0]
    study.write_json(tmp_path / "score" / "scored.json",
                     [{**row, "quality": q, "complexity": 3.0} for row, q in zip(curated, qualities)])
    study.write_json(tmp_path / "score" / "score.json", {"job_id": 2, "result": {
        "judge": "gemma", "quality": {"mean": 3.6, "median": 4.0}, "complexity": {"mean": 3.0, "median": 3.0}}})
    args = study.parse_args(["--out", str(tmp_path), "--base-model", str(tiny_model_dir), "--steps", "2",
                             "--batch-size", "2", "--max-length", "64", "--max-new-tokens", "3", "--threads", "1"])

    metrics = study.stage_train(tmp_path, args, study.ARMS)

    assert {arm: m["train_rows"] for arm, m in metrics.items()} == {"seed": 117, "sprout": 8, "judged": 4, "chat": 6}
    judged = json.loads((tmp_path / "train" / "judged_rows.json").read_text())
    assert [r["output"] for r in judged] == [TOY_ROWS[i]["output"] for i in (0, 2, 6, 7)]  # quality 5, 4.5, 6, 4
    for m in metrics.values():
        assert m["steps"] == 2 and m["eval_tasks"] == 58 and m["held_out_rows"] == 58 and m["train_tokens"] > 0
    assert isinstance(metrics["seed"]["eval_loss_before"], float)  # the base, measured in the first run only
    assert metrics["sprout"]["eval_loss_before"] is None and metrics["judged"]["rouge_l_before"] is None
    assert metrics["chat"]["eval_loss_before"] is None
    stamp = (tmp_path / "train" / "seed" / "metrics.json").stat().st_mtime_ns
    assert study.stage_train(tmp_path, args, study.ARMS) == metrics  # a rerun reuses the finished runs
    assert (tmp_path / "train" / "seed" / "metrics.json").stat().st_mtime_ns == stamp

    results = study.stage_table(tmp_path, args)
    runs = {r["run"]: r for r in results["runs"]}
    assert list(runs) == ["base", "seed", "sprout", "judged", "chat"]
    assert runs["base"]["eval_loss"] == metrics["seed"]["eval_loss_before"]
    for arm in study.ARMS:
        assert runs[arm]["rouge_l"] == metrics[arm]["rouge_l_after"]
        assert runs[arm]["tasks_better"] + runs[arm]["tasks_worse"] <= 58
    assert json.loads((tmp_path / "results.json").read_text())["runs"] == json.loads(json.dumps(results["runs"]))
    table = (tmp_path / "table.md").read_text()
    assert sum(line.startswith("| ") for line in table.splitlines()) == 6 and "| 2 x 2 |" in table and "contaminated by the held-out tasks: 1 instructions and 2 instances (2 of the held-out items hit)" in table
    assert "Judge (gemma): quality mean 3.6, median 4.0; complexity mean 3.0, median 3.0." in table
    assert "| (d) the chat path: Gemma generates, SmolLM2 Instruct answers | 6 |" in table
    assert "Generation, chat path (d): job 3 (cancelled), 2 curated instructions, 6 rows" in table
    assert "- responder: chat, 300 prompt and 200 completion tokens" in table


def test_run_d_alone_measures_the_base_in_its_own_folder(tiny_model_dir, tmp_path):
    """A folder with only run (d) (the study rerun for it): the base is measured there, once."""
    study.stage_split(tmp_path, REFERENCE)
    write_chat_generation(tmp_path, [{"id": i, **row} for i, row in enumerate(TOY_ROWS[:4])])
    args = study.parse_args(["--out", str(tmp_path), "--base-model", str(tiny_model_dir), "--steps", "1",
                             "--batch-size", "2", "--max-length", "64", "--max-new-tokens", "2", "--threads", "1",
                             "--arms", "chat"])
    metrics = study.stage_train(tmp_path, args, args.arm_list)
    assert isinstance(metrics["chat"]["eval_loss_before"], float)
    results = study.stage_table(tmp_path, args)
    assert [r["run"] for r in results["runs"]] == ["base", "chat"]
    assert results["runs"][0]["eval_loss"] == metrics["chat"]["eval_loss_before"]
    assert results["generate"] is None and results["generate_chat"]["rows"] == 4
