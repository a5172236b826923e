"""`sprout train`: options become TrainParams, errors are one line, the run folder is written."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from app.cli import cli
from app.cli.common import CliError
from tests.training_fixtures import TOY_ROWS, tiny_model_dir  # noqa: F401  (fixture)


def _data(tmp_path):
    path = tmp_path / "data.json"
    path.write_text(json.dumps(TOY_ROWS), encoding="utf-8")
    return path


def test_train_command_writes_the_run_folder(tiny_model_dir, tmp_path):
    out = tmp_path / "run"
    config = tmp_path / "train.toml"
    config.write_text('[train]\nlearning_rate = 1e-3\neval_max_tasks = 0\nlogging_steps = 1\n', encoding="utf-8")
    result = CliRunner().invoke(
        cli,
        ["train", "--data", str(_data(tmp_path)), "--base-model", str(tiny_model_dir), "--method", "full",
         "--out", str(out), "--max-steps", "5", "--config", str(config), "--packing", "--json"],
    )
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.output)
    assert metrics["steps"] == 5 and metrics["learning_rate"] == 1e-3
    params = json.loads((out / "train_config.json").read_text())["params"]
    assert params["packing"] is True and params["logging_steps"] == 1 and params["method"] == "full"
    assert (out / "model" / "model.safetensors").is_file() and (out / "report.md").is_file()


def _error(args) -> str:
    result = CliRunner().invoke(cli, ["train", *map(str, args)])
    assert isinstance(result.exception, CliError), result.output
    return str(result.exception)


def test_errors_are_one_line(tiny_model_dir, tmp_path):
    data = _data(tmp_path)
    assert _error(["--data", tmp_path / "missing.json", "--out", tmp_path / "o"]).endswith("no such file")
    assert "method: Input should be 'lora' or 'full'" in _error(["--data", data, "--out", tmp_path / "o", "--method", "half"])
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"instruction": "x"}\n', encoding="utf-8")
    message = _error(["--data", bad, "--out", tmp_path / "o", "--base-model", tiny_model_dir])
    assert "line 1: not a training row" in message and "\n" not in message
    assert "no such file or folder" in _error(["--data", data, "--out", tmp_path / "o", "--base-model", tmp_path / "x"])
