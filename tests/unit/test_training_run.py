"""`run_training` end to end on a tiny random Llama: it learns, saves, reloads and resumes."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from app.core.training import TrainingError, TrainParams, run_training
from app.core.training.data import rows_to_conversations
from app.core.training.evaluate import EvalTask, generate_answers
from tests.training_fixtures import TOY_ROWS, tiny_model_dir, toy_seed_file  # noqa: F401  (fixture)

# Tasks the model never trains on, for the instruction-following score.
UNSEEN = [
    {"instruction": "Name the color of grass.", "input": "", "output": "Grass is green."},
    {"instruction": "Add the numbers.", "input": "1 + 3", "output": "4"},
    {"instruction": "Give the opposite word.", "input": "up", "output": "down"},
]


def _params(model_dir, **kw) -> TrainParams:
    base = dict(
        base_model=str(model_dir), lr_scheduler="constant", warmup_ratio=0.0, eval_fraction=0.0,
        eval_max_tasks=0, logging_steps=10, save_steps=1000,
    )
    return TrainParams(**{**base, **kw})


def _tasks(rows) -> list[EvalTask]:
    return [EvalTask(c[:-1], c[-1]["content"]) for c in rows_to_conversations(rows)]


def _load(folder):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    return AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32), AutoTokenizer.from_pretrained(folder)


def test_full_fine_tuning_learns_the_examples_exactly(tiny_model_dir, tmp_path):
    events = []
    out = tmp_path / "run"
    params = _params(tiny_model_dir, method="full", max_steps=300, learning_rate=1e-3)
    metrics = run_training(params, TOY_ROWS, out, progress=events.append)

    model, tokenizer = _load(out / "model")
    assert tokenizer.chat_template  # saved with the tokenizer, so the model is served as trained
    answers = generate_answers(model, tokenizer, _tasks(TOY_ROWS), max_new_tokens=16, batch_size=8)
    assert answers == [row["output"] for row in TOY_ROWS]

    assert metrics["steps"] == 300 and metrics["train_tokens"] > 0 and metrics["train_seconds"] > 0
    saved = json.loads((out / "metrics.json").read_text())
    for key in ("eval_loss_before", "eval_loss_after", "rouge_l_before", "rouge_l_after", "train_tokens", "train_seconds"):
        assert key in saved
    config = json.loads((out / "train_config.json").read_text())
    assert config["params"]["method"] == "full" and config["trainer_args"]["learning_rate"] == 1e-3
    assert config["trainer_args"]["bf16"] is False and config["trainer_args"]["gradient_checkpointing"] is False
    log = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log if r["phase"] == "train" and "loss" in r][:2] == [1, 10]
    assert (out / "report.md").is_file()

    train_events = [e for e in events if e["stage"] == "train" and e["step"]]
    assert [e["step"] for e in train_events] == list(range(1, 301))
    for e in events:
        assert {"stage", "step", "max_steps", "loss", "tokens_per_s", "eta_s"} <= e.keys()
    assert train_events[-1]["max_steps"] == 300 and train_events[-1]["eta_s"] == 0
    assert train_events[-1]["loss"] < 0.05 and train_events[-1]["tokens_per_s"] > 0
    assert events[-1]["stage"] == "done"


def test_lora_adapter_saves_reloads_and_generates(tiny_model_dir, tmp_path):
    from peft import PeftModel

    out = tmp_path / "run"
    seeds = toy_seed_file(tmp_path / "seeds.jsonl", UNSEEN)
    params = _params(
        tiny_model_dir, method="lora", max_steps=20, learning_rate=1e-2, merge_lora=True,
        eval_tasks=seeds, eval_max_tasks=3, eval_max_new_tokens=8,
    )
    metrics = run_training(params, TOY_ROWS, out)

    adapter = out / "adapter"
    assert (adapter / "adapter_config.json").is_file() and (adapter / "adapter_model.safetensors").is_file()
    assert not (adapter / "model.safetensors").exists()  # the adapter only, not the base weights
    assert json.loads((adapter / "adapter_config.json").read_text())["base_model_name_or_path"] == str(tiny_model_dir)

    base, tokenizer = _load(tiny_model_dir)
    tuned = PeftModel.from_pretrained(_load(tiny_model_dir)[0], adapter).eval()
    merged, merged_tokenizer = _load(out / "model")
    ids = tokenizer.apply_chat_template(_tasks(UNSEEN)[0].messages, add_generation_prompt=True, return_tensors="pt")
    ids = ids["input_ids"] if not torch.is_tensor(ids) else ids
    with torch.no_grad():
        base_logits, tuned_logits, merged_logits = (m(ids).logits for m in (base.eval(), tuned, merged.eval()))
    assert not torch.allclose(base_logits, tuned_logits, atol=1e-3)  # the adapter changed the model
    torch.testing.assert_close(merged_logits, tuned_logits, atol=1e-4, rtol=1e-4)

    tasks = _tasks(UNSEEN)
    answers = generate_answers(tuned, tokenizer, tasks, max_new_tokens=8, batch_size=3)
    assert answers == generate_answers(merged, merged_tokenizer, tasks, max_new_tokens=8, batch_size=3)
    samples = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    assert [s["tuned"] for s in samples] == answers  # the run scored what the saved adapter generates
    assert metrics["eval_tasks"] == 3 and 0 <= metrics["rouge_l_after"] <= 1


def test_held_out_loss_and_scores_are_reported(tiny_model_dir, tmp_path):
    out = tmp_path / "run"
    rows = TOY_ROWS + UNSEEN
    seeds = toy_seed_file(tmp_path / "seeds.jsonl", rows)
    params = _params(
        tiny_model_dir, method="full", max_steps=30, learning_rate=1e-3, packing=True,
        eval_fraction=0.3, eval_tasks=seeds, eval_max_tasks=10, eval_max_new_tokens=6,
    )
    metrics = run_training(params, rows, out)

    assert metrics["train_rows"] + metrics["held_out_rows"] == len(rows) and metrics["held_out_rows"] == 4
    # the score uses only tasks the model did not train on: the held-out rows here
    assert metrics["eval_tasks"] == metrics["held_out_rows"]
    for key in ("eval_loss_before", "eval_loss_after", "rouge_l_before", "rouge_l_after"):
        assert isinstance(metrics[key], float)
    report = (out / "report.md").read_text()
    assert f"| held-out loss | {metrics['eval_loss_before']:.4f} | {metrics['eval_loss_after']:.4f} |" in report
    assert "### 1. ROUGE-L" in report and "**Base**" in report and "**Tuned**" in report
    phases = [json.loads(line)["phase"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert phases.index("eval_before") < phases.index("train") and phases[-1] == "eval_after"
    assert phases.count("eval") == 2  # the trainer's own held-out evaluations, before and after


def test_base_evaluation_can_be_left_to_another_run(tiny_model_dir, tmp_path):
    """Several runs from one base measure it once: with eval_before off a run skips the base
    model's figures and reports the same tuned figures as a run that measured both."""
    held_out = tmp_path / "held_out.json"
    held_out.write_text(json.dumps(UNSEEN), encoding="utf-8")
    common = dict(method="lora", max_steps=6, learning_rate=1e-2, held_out_file=held_out, eval_tasks=held_out,
                  eval_max_tasks=3, eval_max_new_tokens=6, report_samples=2)
    both = run_training(_params(tiny_model_dir, **common), TOY_ROWS, tmp_path / "both")
    after_only = run_training(_params(tiny_model_dir, eval_before=False, **common), TOY_ROWS, tmp_path / "after")

    assert isinstance(both["eval_loss_before"], float) and isinstance(both["rouge_l_before"], float)
    assert after_only["eval_loss_before"] is None and after_only["rouge_l_before"] is None
    for key in ("eval_loss_after", "rouge_l_after", "train_tokens"):
        assert after_only[key] == both[key]
    assert not (tmp_path / "after" / "eval_before.json").exists()
    samples = [json.loads(line) for line in (tmp_path / "after" / "samples.jsonl").read_text().splitlines()]
    assert len(samples) == 3 and all(s["base"] is None and s["rouge_l_base"] is None for s in samples)
    assert [s["tuned"] for s in samples] == [
        json.loads(line)["tuned"] for line in (tmp_path / "both" / "samples.jsonl").read_text().splitlines()]
    report = (tmp_path / "after" / "report.md").read_text()
    assert "| held-out loss | – |" in report and "(not evaluated in this run)" in report


def test_resume_continues_from_the_last_checkpoint(tiny_model_dir, tmp_path):
    from safetensors.torch import load_file

    common = dict(method="full", learning_rate=1e-3, save_steps=2, logging_steps=1)
    interrupted = tmp_path / "interrupted"
    run_training(_params(tiny_model_dir, max_steps=4, **common), TOY_ROWS[:4], interrupted)
    assert sorted(p.name for p in (interrupted / "checkpoints").glob("checkpoint-*")) == ["checkpoint-2", "checkpoint-4"]

    with pytest.raises(TrainingError, match="already holds checkpoints"):
        run_training(_params(tiny_model_dir, max_steps=6, **common), TOY_ROWS[:4], interrupted)
    resumed = run_training(_params(tiny_model_dir, max_steps=6, resume=True, **common), TOY_ROWS[:4], interrupted)
    assert resumed["resumed_from"].endswith("checkpoint-4") and resumed["steps"] == 6

    straight = tmp_path / "straight"
    run_training(_params(tiny_model_dir, max_steps=6, **common), TOY_ROWS[:4], straight)
    a = load_file(interrupted / "model" / "model.safetensors")
    b = load_file(straight / "model" / "model.safetensors")
    for name in a:
        torch.testing.assert_close(a[name], b[name], atol=1e-5, rtol=1e-5)


def test_bad_inputs_are_refused_before_training(tiny_model_dir, tmp_path):
    from app.core.training import BaseModelError, TrainDataError

    with pytest.raises(BaseModelError, match="no such file or folder"):
        run_training(_params(tmp_path / "missing"), TOY_ROWS, tmp_path / "a")
    with pytest.raises(TrainDataError, match="line 1"):
        bad = tmp_path / "bad.jsonl"
        bad.write_text('{"prompt": 1, "completion": "x"}\n')
        run_training(_params(tiny_model_dir), bad, tmp_path / "b")


def test_a_bad_evaluation_file_is_refused_before_the_model_loads(tmp_path):
    from app.core.training import TrainDataError

    bad = tmp_path / "tasks.jsonl"
    bad.write_text('{"instances": []}\n', encoding="utf-8")
    # the base model does not exist either: the data and task files are checked first
    with pytest.raises(TrainDataError, match=r"evaluation tasks .*tasks.jsonl: line 1: missing field 'instruction'"):
        run_training(_params(tmp_path / "missing", eval_tasks=bad, eval_max_tasks=5), TOY_ROWS, tmp_path / "run")


def test_resuming_from_a_checkpoint_at_max_steps_trains_no_extra_step(tiny_model_dir, tmp_path):
    """A LoRA run stopped after its last checkpoint (at max_steps, mid-epoch: a worker killed
    while it evaluated) resumes to the same adapter, trained max_steps steps, not one more."""
    from safetensors.torch import load_file

    common = dict(method="lora", learning_rate=1e-2, max_steps=3, save_steps=3, logging_steps=1, batch_size=1)
    run = tmp_path / "run"
    first = run_training(_params(tiny_model_dir, **common), TOY_ROWS, run)  # 8 rows at 1 a step: mid-epoch
    assert first["steps"] == 3 and first["epochs"] < 1
    before = load_file(run / "adapter" / "adapter_model.safetensors")
    shutil.rmtree(run / "adapter")  # stopped before the end: what a finished run writes is absent
    (run / "metrics.json").unlink()

    resumed = run_training(_params(tiny_model_dir, resume=True, **common), TOY_ROWS, run)
    assert resumed["resumed_from"].endswith("checkpoint-3")
    assert resumed["steps"] == 3 and resumed["epochs"] == first["epochs"]
    assert sorted(p.name for p in (run / "checkpoints").glob("checkpoint-*")) == ["checkpoint-3"]
    after = load_file(run / "adapter" / "adapter_model.safetensors")
    assert after.keys() == before.keys()
    for name in before:
        torch.testing.assert_close(after[name], before[name])
