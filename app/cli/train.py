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
from app.cli.params_options import params_options
from app.core.training.config import TrainParams

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


@params_options(
    TrainParams,
    into="overrides",
    names={
        "learning_rate": ["--lr", "--learning-rate"],
        "gradient_accumulation_steps": ["--grad-accum", "--gradient-accumulation-steps"],
        "torch_threads": ["--threads", "--torch-threads"],
    },
    panel="Training settings",
)
def train(
    data: Path = typer.Option(..., "--data", help="Export file: alpaca JSON, messages JSONL or prompt-completion JSONL."),
    out: Path = typer.Option(..., "--out", help="Run folder (adapter or model, report.md, metrics.json, checkpoints)."),
    config: Path = typer.Option(None, "--config", help="JSON or TOML file of training settings; options override it."),
    as_json: bool = typer.Option(False, "--json", help="Print the metrics as JSON."),
    overrides: dict[str, Any] | None = None,
) -> None:
    """Fine-tune a model on a dataset and write a run folder with a before/after report.

    A training setting not given as an option comes from the --config file, else from the
    SPROUT_TRAIN__* settings, else it is the default shown.
    """
    from app.core.training import TrainingError, run_training

    settings = load_settings()
    # defaults: SPROUT_TRAIN__* settings, then the --config file, then the options
    values = {**settings.train.model_dump(exclude_unset=True), **(_config_file(config) if config else {})}
    overrides = dict(overrides or {})
    modules = overrides.get("lora_target_modules")
    if isinstance(modules, str) and modules != "all-linear":
        # one --lora-target-modules names one module; PEFT would read a bare string as a pattern
        overrides["lora_target_modules"] = [modules]
    values.update(overrides)
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
