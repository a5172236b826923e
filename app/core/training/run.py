"""`run_training()`: one fine-tuning run from data to a run folder, read top to bottom.

The shells (the `sprout train` command, the Celery task of an `sft` job) call this and
nothing else; it knows nothing of either. Steps: read and split the data, resolve the base
model, evaluate it (held-out loss, greedy answers scored by ROUGE-L), train, evaluate
again, save. The run folder:

    adapter/ or model/   the LoRA adapter or the full model, with the tokenizer
    model/               (LoRA with merge_lora) the base with the adapter merged in
    checkpoints/         resumable trainer checkpoints (optimizer, scheduler, RNG state)
    train_config.json    every setting, the resolved base model, library versions
    metrics.jsonl        the runtime plan, the trainer's log lines and the two evaluations
    metrics.json         the run's figures (see `run_training`)
    eval_before.json     the base model's figures, reused when the run resumes
    samples.jsonl        each evaluation task with the base and the tuned answer
    report.md            the figures and side-by-side samples

Several GPUs: the same code under `accelerate launch` (the trainer is accelerate-aware);
only the main process generates answers and writes files.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from app.core.training.base_model import load_model_and_tokenizer, resolve_base_model
from app.core.training.config import TrainParams
from app.core.training.data import load_conversations, split_held_out
from app.core.training.errors import TrainingError
from app.core.training.evaluate import generate_answers, load_eval_tasks, mean, rouge_l_scores
from app.core.training.report import render_report, write_json, write_samples

ProgressFn = Callable[[dict[str, Any]], None]

MASK_DESCRIPTIONS = {
    "assistant": "assistant turns only (chat template's {% generation %} markers)",
    "completion": "the final answer only (tokens after the rendered prompt)",
    "none": "every token",
}


def run_training(
    params: TrainParams,
    rows_or_path: str | Path | Sequence[dict[str, Any]],
    out_dir: str | Path,
    progress: ProgressFn | None = None,
) -> dict[str, Any]:
    """Fine-tune `params.base_model` on the rows (or export file) and write the run folder.

    `progress`, if given, is called with dicts: `stage` (load_data, base_model, eval_before,
    train, eval_after, save, done), `step`, `max_steps`, `loss`, `tokens_per_s`, `eta_s`
    (None where not yet known). Returns the metrics also written to `metrics.json`:
    eval_loss_before/after, rouge_l_before/after, train_tokens, train_seconds, `runtime` (how
    the machine was used: device, attention kernel, packing layout, micro-batch, Liger and
    why; see runtime.py) and more.
    Raises TrainingError (a ValueError: TrainDataError, BaseModelError) for input the caller can fix.
    """
    with _quiet_progress_bars():
        return _run(params, rows_or_path, Path(out_dir), _Notifier(progress))


def _run(params: TrainParams, rows_or_path: Any, out: Path, notify: _Notifier) -> dict[str, Any]:
    import torch
    from accelerate import PartialState
    from transformers import set_seed
    from transformers.trainer_callback import PrinterCallback
    from transformers.trainer_utils import get_last_checkpoint

    from app.core.training.runtime import choose_attention, detect_device, plan_runtime, precision_flags
    from app.core.training.trainer import (
        MetricsLogCallback,
        ProgressCallback,
        build_trainer,
        mask_mode,
        write_jsonl_line,
    )

    out.mkdir(parents=True, exist_ok=True)
    if params.torch_threads:
        torch.set_num_threads(params.torch_threads)

    notify.stage("load_data")
    conversations = load_conversations(rows_or_path)
    if params.held_out_file is not None:  # a fixed held-out set: runs on different data are measured alike
        train, held_out = list(conversations), load_conversations(params.held_out_file)
    else:
        train, held_out = split_held_out(conversations, params.eval_fraction, params.seed)

    ckpt_dir = out / "checkpoints"
    resume_from = get_last_checkpoint(str(ckpt_dir)) if ckpt_dir.is_dir() else None
    if resume_from and not params.resume:
        raise TrainingError(f"{out} already holds checkpoints of a run; resume it (`--resume`) or use another folder")
    log_path = out / "metrics.jsonl"
    if not resume_from:
        log_path.unlink(missing_ok=True)

    eval_source, tasks = load_eval_tasks(params.eval_tasks, params.eval_max_tasks, params.seed, train, held_out)

    notify.stage("base_model")
    with PartialState().main_process_first():  # under `accelerate launch`, convert a GGUF once
        folder = resolve_base_model(params.base_model, params.model_cache_dir)
    device = detect_device()
    attention, _ = choose_attention(params.attn_implementation, device, any(precision_flags(params, device)))
    model, tokenizer = load_model_and_tokenizer(folder, torch.float32, attention)
    mode = mask_mode(tokenizer, params)
    plan = plan_runtime(params, model, device)  # attention, packing, Liger, micro-batch: logged and kept

    tracker = ProgressCallback(notify.train_step)
    trainer = build_trainer(
        params, model, tokenizer, train, held_out, ckpt_dir,
        callbacks=[tracker, MetricsLogCallback(log_path)], plan=plan,
    )
    trainer.remove_callback(PrinterCallback)  # the caller reports progress its own way
    is_main = trainer.is_world_process_zero()
    if is_main:
        plan.log()
        write_jsonl_line(log_path, {"phase": "runtime", **plan.as_dict()})
    autocast = torch.bfloat16 if trainer.args.bf16 else torch.float16 if trainer.args.fp16 else None

    def evaluate(phase: str) -> tuple[float | None, list[str]]:
        notify.stage(phase)
        loss = trainer.evaluate()["eval_loss"] if held_out else None
        answers: list[str] = []
        if is_main and tasks:
            adapter_off = trainer.model.disable_adapter() if phase == "eval_before" and params.method == "lora" \
                else contextlib.nullcontext()
            with adapter_off:
                answers = generate_answers(
                    trainer.model, tokenizer, tasks, params.eval_max_new_tokens, params.eval_batch_size, autocast
                )
        trainer.accelerator.wait_for_everyone()
        return loss, answers

    before_path = out / "eval_before.json"
    if not params.eval_before:  # measured elsewhere, once for several runs from the same base
        loss_before, answers_before = None, []
    elif resume_from and before_path.is_file():  # the base model's figures do not change
        cached = json.loads(before_path.read_text(encoding="utf-8"))
        loss_before, answers_before = cached["eval_loss"], cached["answers"]
    else:
        loss_before, answers_before = evaluate("eval_before")
        if is_main:
            write_json(before_path, {"eval_loss": loss_before, "answers": answers_before})
    rouge_before = rouge_l_scores([t.reference for t in tasks], answers_before) if answers_before else []
    if is_main:
        write_jsonl_line(log_path, {"phase": "eval_before", "eval_loss": loss_before, "rouge_l": mean(rouge_before)})

    notify.stage("train")
    # The evaluation above moves the global RNGs that training draws from (dropout, data
    # order), so training is seeded again here: a run trains alike whether or not it measured
    # its base model (measured: the tuned loss differed in the third decimal without this).
    # (A resumed run restores the RNG state of its checkpoint instead.)
    set_seed(params.seed)
    started = time.monotonic()
    if resume_from and _reached_max_steps(resume_from, trainer.args.max_steps):
        training_loss = _restore_finished(trainer, resume_from)
        tracker.tokens0 = trainer.state.num_input_tokens_seen  # nothing trained in this session
    else:
        training_loss = trainer.train(resume_from_checkpoint=resume_from).training_loss
    train_seconds = time.monotonic() - started
    session_tokens = trainer.state.num_input_tokens_seen - tracker.tokens0

    loss_after, answers_after = evaluate("eval_after")
    rouge_after = rouge_l_scores([t.reference for t in tasks], answers_after) if answers_after else []

    notify.stage("save")
    metrics = {
        "eval_loss_before": loss_before,
        "eval_loss_after": loss_after,
        "rouge_l_before": mean(rouge_before),
        "rouge_l_after": mean(rouge_after),
        "train_tokens": int(trainer.state.num_input_tokens_seen),
        "train_seconds": round(train_seconds, 3),
        "train_tokens_per_s": session_tokens / train_seconds if train_seconds > 0 else None,
        "train_loss": training_loss,
        "steps": trainer.state.global_step,
        "epochs": trainer.state.epoch,
        "learning_rate": params.resolved_learning_rate,
        "train_rows": len(train),
        "held_out_rows": len(held_out),
        "eval_tasks": len(tasks),
        "resumed_from": resume_from,
        "runtime": plan.as_dict(),
    }
    final_dir = out / ("adapter" if params.method == "lora" else "model")
    trainer.save_model(str(final_dir))
    if is_main:
        tokenizer.save_pretrained(final_dir)
        if params.method == "lora" and params.merge_lora:
            merged = trainer.model.merge_and_unload()
            merged.save_pretrained(out / "model")
            tokenizer.save_pretrained(out / "model")
    if is_main:
        config = {
            "params": params.model_dump(mode="json"),
            "base_model": params.base_model,
            "base_model_folder": str(folder),
            "loss_mask": MASK_DESCRIPTIONS[mode],
            "runtime": plan.as_dict(),
            "data": str(rows_or_path) if isinstance(rows_or_path, (str, Path)) else "rows",
            "eval_tasks_source": eval_source,
            "versions": _versions(),
            "trainer_args": trainer.args.to_dict(),
        }
        write_json(out / "train_config.json", config)
        write_json(out / "metrics.json", metrics)
        write_jsonl_line(log_path, {"phase": "eval_after", "eval_loss": loss_after, "rouge_l": mean(rouge_after)})
        write_samples(out / "samples.jsonl", tasks, answers_before, answers_after, rouge_before, rouge_after)
        (out / "report.md").write_text(
            render_report(metrics, config, tasks, answers_before, answers_after, rouge_before, rouge_after,
                          params.report_samples),
            encoding="utf-8",
        )
    trainer.accelerator.wait_for_everyone()
    notify.stage("done", step=trainer.state.global_step, max_steps=trainer.state.max_steps)
    return metrics


def _reached_max_steps(checkpoint: str, max_steps: int) -> bool:
    """Whether `checkpoint` holds a run's last step. transformers checks for `max_steps` only
    after a step, so resuming from a checkpoint saved at `max_steps` in the middle of an
    epoch would train one step more than asked."""
    state = json.loads((Path(checkpoint) / "trainer_state.json").read_text(encoding="utf-8"))
    return max_steps > 0 and int(state.get("global_step", 0)) >= max_steps


def _restore_finished(trainer: Any, checkpoint: str) -> float | None:
    """Load a finished run's last checkpoint (weights and trainer state) without training;
    returns the mean of the training losses it logged."""
    from transformers import TrainerState

    trainer._load_from_checkpoint(checkpoint)
    trainer.state = TrainerState.load_from_json(str(Path(checkpoint) / "trainer_state.json"))
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    return sum(losses) / len(losses) if losses else None


class _Notifier:
    """Sends progress dicts with every key present, so a consumer never checks for keys."""

    def __init__(self, progress: ProgressFn | None):
        self.progress = progress
        self.last: dict[str, Any] = {"step": 0, "max_steps": None}

    def stage(self, stage: str, **known: Any) -> None:
        if self.progress:
            self.progress({**self.last, "loss": None, "tokens_per_s": None, "eta_s": None, **known, "stage": stage})

    def train_step(self, info: dict[str, Any]) -> None:
        self.last = {"step": info["step"], "max_steps": info["max_steps"]}
        if self.progress:
            self.progress(info)


@contextlib.contextmanager
def _quiet_progress_bars() -> Iterator[None]:
    """Silence the tqdm bars of `datasets.map` and of weight saving; the caller shows progress."""
    import datasets
    from transformers.utils import logging as hf_logging

    ds_on, hf_on = datasets.is_progress_bar_enabled(), hf_logging.is_progress_bar_enabled()
    datasets.disable_progress_bars()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if ds_on:
            datasets.enable_progress_bars()
        if hf_on:
            hf_logging.enable_progress_bar()


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in ("torch", "transformers", "trl", "peft", "accelerate", "datasets"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:  # pragma: no cover
            out[name] = "missing"
    return out
