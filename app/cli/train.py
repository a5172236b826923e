"""`sprout train`: fine-tune a model on a curated dataset (the built-in SFT trainer).

A thin shell over `app.core.training.run_training`: it builds `TrainParams` from a
settings file and the options, shows a progress bar, and prints the figures. Several GPUs:
run the same command under `accelerate launch` (only the first process draws the bar).
"""

from __future__ import annotations

import json
import os
import tomllib
from pathlib import Path
from typing import Any

import typer
from pydantic import ValidationError

from app.cli.common import CliError, console, describe_validation_error, load_settings

STAGES = {
    "load_data": "reading the data",
    "base_model": "loading the base model (a GGUF is converted once)",
    "eval_before": "evaluating the base model",
    "train": "training",
    "eval_after": "evaluating the tuned model",
    "save": "saving",
    "done": "done",
}


def register(cli: typer.Typer) -> None:
    """Adds the `train` command."""
    cli.command("train")(train)


def train(
    data: Path = typer.Option(..., "--data", help="Export file: alpaca JSON, messages JSONL or prompt-completion JSONL."),
    out: Path = typer.Option(..., "--out", help="Run folder (adapter or model, report.md, metrics.json, checkpoints)."),
    base_model: str = typer.Option(None, "--base-model", help="'default' (embedded Gemma 3 270M), a model folder or a .gguf."),
    method: str = typer.Option(None, "--method", help="lora or full."),
    config: Path = typer.Option(None, "--config", help="JSON or TOML file of training settings; options override it."),
    max_steps: int = typer.Option(None, "--max-steps", help="Stop after N optimizer steps (overrides --epochs)."),
    epochs: float = typer.Option(None, "--epochs", help="Passes over the data (default 3)."),
    lr: float = typer.Option(None, "--lr", help="Peak learning rate (default 2e-4 LoRA, 2e-5 full)."),
    batch_size: int = typer.Option(None, "--batch-size", help="Sequences per device per step (default 8)."),
    grad_accum: int = typer.Option(None, "--grad-accum", help="Gradient accumulation steps (default 1)."),
    max_length: int = typer.Option(None, "--max-length", help="Tokens per sequence (default 1024)."),
    packing: bool = typer.Option(None, "--packing/--no-packing", help="Pack examples into full sequences."),
    precision: str = typer.Option(None, "--precision", help="auto, fp32, bf16 or fp16."),
    lora_r: int = typer.Option(None, "--lora-r", help="LoRA rank (default 16)."),
    lora_alpha: int = typer.Option(None, "--lora-alpha", help="LoRA alpha (default 32)."),
    merge_lora: bool = typer.Option(None, "--merge-lora/--no-merge-lora", help="Also save the merged model."),
    eval_fraction: float = typer.Option(None, "--eval-fraction", help="Rows held out for the loss (default 0.1)."),
    eval_tasks: Path = typer.Option(None, "--eval-tasks", help="Seed file whose instances test instruction following."),
    eval_max_tasks: int = typer.Option(None, "--eval-max-tasks", help="Tasks answered before and after (default 20)."),
    seed: int = typer.Option(None, "--seed", help="Seed of the split, the data order and the adapter init."),
    resume: bool = typer.Option(False, "--resume", help="Continue from the last checkpoint in --out."),
    threads: int = typer.Option(None, "--threads", help="CPU threads for torch (default: torch's choice)."),
    as_json: bool = typer.Option(False, "--json", help="Print the metrics as JSON."),
) -> None:
    """Fine-tune a model on a dataset and write a run folder with a before/after report."""
    from app.core.training import TrainingError, TrainParams, run_training

    settings = load_settings()
    # defaults: SPROUT_TRAIN__* settings, then the --config file, then the options
    values = {**settings.train.model_dump(exclude_unset=True), **(_config_file(config) if config else {})}
    options = {
        "base_model": base_model, "method": method, "max_steps": max_steps, "epochs": epochs,
        "learning_rate": lr, "batch_size": batch_size, "gradient_accumulation_steps": grad_accum,
        "max_length": max_length, "packing": packing, "precision": precision, "lora_r": lora_r,
        "lora_alpha": lora_alpha, "merge_lora": merge_lora, "eval_fraction": eval_fraction,
        "eval_tasks": eval_tasks, "eval_max_tasks": eval_max_tasks, "seed": seed,
        "resume": resume or None, "torch_threads": threads,
    }
    values.update({k: v for k, v in options.items() if v is not None})
    values.setdefault("model_cache_dir", Path(settings.data_dir) / "hf-models")
    try:
        params = TrainParams(**values)
    except ValidationError as exc:
        raise CliError(f"bad training setting: {describe_validation_error(exc)}") from None
    if not data.is_file():
        raise CliError(f"{data}: no such file")

    main_process = int(os.environ.get("RANK", "0")) == 0
    try:
        with _ProgressBar(enabled=main_process and not as_json) as bar:
            metrics = run_training(params, data, out, progress=bar.update)
    except TrainingError as exc:
        raise CliError(str(exc)) from None
    except KeyboardInterrupt:
        raise CliError(f"interrupted; continue with: sprout train ... --out {out} --resume", code=130) from None
    if not main_process:
        return
    if as_json:
        print(json.dumps(metrics, indent=2))
        return
    _print_summary(metrics, out)


def _config_file(path: Path) -> dict[str, Any]:
    """Training settings from a JSON or TOML file (a `[train]` table, or top-level keys)."""
    if not path.is_file():
        raise CliError(f"{path}: no such file")
    try:
        if path.suffix.lower() == ".toml":
            data = tomllib.loads(path.read_text(encoding="utf-8"))
            data = data.get("train", data)
        else:
            data = json.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CliError(f"{path}: cannot read the settings ({exc})") from None
    if not isinstance(data, dict):
        raise CliError(f"{path}: expected a table of settings")
    return data


class _ProgressBar:
    """A rich progress bar fed by `run_training`'s progress dicts."""

    def __init__(self, enabled: bool):
        self.enabled = enabled

    def __enter__(self) -> _ProgressBar:
        if self.enabled:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn

            self.progress = Progress(
                SpinnerColumn(),
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("loss {task.fields[loss]}  {task.fields[tps]} tok/s  ETA {task.fields[eta]}"),
                console=console,
                transient=True,  # the summary (or the one-line error) replaces it
            )
            self.progress.start()
            self.task = self.progress.add_task(STAGES["load_data"], total=None, loss="–", tps="–", eta="–")
        return self

    def __exit__(self, *exc: object) -> None:
        if self.enabled:
            self.progress.stop()

    def update(self, info: dict[str, Any]) -> None:
        if not self.enabled:
            return
        fields: dict[str, Any] = {"description": STAGES.get(info["stage"], info["stage"])}
        if info.get("max_steps"):
            fields["total"] = info["max_steps"]
            fields["completed"] = info["step"]
        if info["stage"] == "train":
            if info.get("loss") is not None:
                fields["loss"] = f"{info['loss']:.4f}"
            if info.get("tokens_per_s") is not None:
                fields["tps"] = f"{info['tokens_per_s']:.0f}"
            fields["eta"] = _duration(info.get("eta_s"))
        self.progress.update(self.task, **fields)


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


def _print_summary(metrics: dict[str, Any], out: Path) -> None:
    from rich.table import Table

    def fmt(value: Any) -> str:
        return "–" if value is None else f"{value:.4f}"

    table = Table(title="before → after")
    table.add_column("")
    table.add_column("before", justify="right")
    table.add_column("after", justify="right")
    table.add_row("held-out loss", fmt(metrics["eval_loss_before"]), fmt(metrics["eval_loss_after"]))
    table.add_row("ROUGE-L (greedy answers)", fmt(metrics["rouge_l_before"]), fmt(metrics["rouge_l_after"]))
    console.print(table)
    console.print(
        f"{metrics['steps']} steps, {metrics['train_tokens']} tokens in {metrics['train_seconds']:.1f} s; "
        f"report: {out / 'report.md'}",
        highlight=False,
    )
