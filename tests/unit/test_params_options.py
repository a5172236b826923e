"""CLI options generated from a params model: every field has one, its default is the model's,
only the options the user gave reach the command, and `sprout train` layers them last."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import pytest
import typer
from pydantic import BaseModel, Field
from typer.testing import CliRunner

from app.cli import cli
from app.cli.common import CliError
from app.cli.params_options import option_name, params_options
from app.core.training.config import TrainParams
from app.settings import get_settings

RENAMED = {"learning_rate": "--lr", "gradient_accumulation_steps": "--grad-accum", "torch_threads": "--threads"}


def _train_command():
    return typer.main.get_command(cli).commands["train"]


def _help(app_or_cli, *args: str) -> str:
    result = CliRunner().invoke(app_or_cli, [*args, "--help"], env={"COLUMNS": "400", "NO_COLOR": "1"})
    assert result.exit_code == 0, result.output
    return result.output


def test_every_train_param_is_an_option_with_the_models_default():
    params = {p.name: p for p in _train_command().params}
    for field, info in TrainParams.model_fields.items():
        assert field in params, f"sprout train has no option for TrainParams.{field}"
        option = params[field]
        assert option_name(field) in option.opts + option.secondary_opts
        assert option.opts[0] == RENAMED.get(field, option_name(field))  # today's names come first
        default = info.get_default(call_default_factory=True)
        if option.multiple and default is not None and not isinstance(default, list):
            default = [default]
        assert option.default == default, field
        assert option.help and option.help.replace(" (repeatable)", "").split("`")[0] in (info.description or ""), field


def test_train_help_shows_the_models_defaults_and_keeps_todays_names():
    text = _help(cli, "train")
    for name in ["--data", "--out", "--config", "--json", "--lr", "--grad-accum", "--threads", "--max-steps",
                 "--epochs", "--batch-size", "--packing", "--no-packing", "--merge-lora", "--resume", "--eval-tasks",
                 "--lora-r", "--lora-alpha", "--seed", "--precision", "--method", "--base-model"]:
        assert name in text
    for field, shown in [("epochs", "3.0"), ("max_length", "1024"), ("lora_r", "16"), ("eval_max_tasks", "20")]:
        assert str(TrainParams.model_fields[field].default) == shown
        line = next(line for line in text.splitlines() if f"{option_name(field)} " in line)
        assert f"[default: {shown}]" in line, line
    assert "[lora|full]" in text and "[default: no-packing]" in text


class Toy(BaseModel):
    """A params model standing in for a method's."""

    steps: int = Field(default=5, ge=1, description="How many steps; see `mode`.")
    mode: Literal["fast", "slow"] = Field(default="fast", description="Speed.")
    verbose: bool = Field(default=False, description="Say more.")
    rate: float | None = Field(default=None, description="Rate; unset: the method's.")
    check: bool | Literal["auto"] = Field(default="auto", description="Check it.")
    targets: str | list[str] = Field(default="all", description="'all' or names.")
    seed_file: Path | None = Field(default=None, description="A file.")


class ToyChanged(Toy):
    steps: int = Field(default=7, ge=1, description="How many steps; see `mode`.")


def _toy_app(model: type[BaseModel], seen: list[dict[str, Any]]) -> typer.Typer:
    app = typer.Typer()

    @app.command()
    @params_options(model, into="given", names={"rate": ["--lr", "--rate"]})
    def run(name: str = typer.Option("x", "--name"), given: dict[str, Any] | None = None) -> None:
        seen.append({"name": name, **(given or {})})
        model(**(given or {}))  # the model checks the values

    return app


def _run(model: type[BaseModel], *args: str) -> dict[str, Any]:
    seen: list[dict[str, Any]] = []
    result = CliRunner().invoke(_toy_app(model, seen), list(args))
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    assert result.exit_code == 0, result.output
    return seen[0]


def test_a_changed_model_default_is_the_options_default():
    line = next(row for row in _help(_toy_app(Toy, [])).splitlines() if "--steps" in row)
    assert "[default: 5]" in line and "How many steps; see `--mode`." in line
    line = next(row for row in _help(_toy_app(ToyChanged, [])).splitlines() if "--steps" in row)
    assert "[default: 7]" in line


def test_only_the_options_given_reach_the_command_typed():
    assert _run(Toy) == {"name": "x"}
    # an option given with the default's value is still given (it overrides a config file)
    assert _run(Toy, "--steps", "5", "--no-verbose") == {"name": "x", "steps": 5, "verbose": False}
    given = _run(Toy, "--lr", "0.5", "--verbose", "--check", "false", "--targets", "q", "--targets", "v",
                 "--seed-file", "s.jsonl", "--mode", "slow")
    assert given == {"name": "x", "rate": 0.5, "verbose": True, "check": "false", "targets": ["q", "v"],
                     "seed_file": Path("s.jsonl"), "mode": "slow"}
    assert _run(Toy, "--rate", "0.25", "--targets", "all") == {"name": "x", "rate": 0.25, "targets": "all"}
    assert Toy(check="false").check is False


def test_the_model_checks_the_values():
    with pytest.raises(ValueError, match="mode"):
        _run(Toy, "--mode", "medium")
    with pytest.raises(ValueError, match="steps"):
        _run(Toy, "--steps", "0")


def test_a_field_with_no_option_form_or_a_wrong_name_is_refused_when_the_command_is_built():
    class Nested(BaseModel):
        weights: dict[str, float] = Field(default_factory=dict)

    with pytest.raises(TypeError, match="weights"):
        params_options(Nested, into="given")(lambda given=None: None)
    with pytest.raises(ValueError, match="no field"):
        params_options(Toy, into="given", names={"stepz": ["--s"]})
    with pytest.raises(ValueError, match="no parameter"):
        params_options(Toy, into="given")(lambda other=None: None)


def _train_error(tmp_path, *args: str, env: dict[str, str] | None = None) -> str:
    result = CliRunner().invoke(cli, ["train", "--data", str(tmp_path / "missing.json"), "--out",
                                      str(tmp_path / "o"), *args], env=env)
    assert isinstance(result.exception, CliError), result.output
    return str(result.exception)


@pytest.fixture
def fresh_settings():
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def test_train_layers_options_over_the_config_file_and_the_settings(tmp_path, fresh_settings):
    config = tmp_path / "train.toml"
    config.write_text("[train]\nmicro_batch_size = 3\n", encoding="utf-8")
    # the config's micro batch does not divide the model's batch size...
    assert "micro_batch_size 3 must divide batch_size 8" in _train_error(tmp_path, "--config", str(config))
    # ...an option's value replaces it (the data file is checked after the settings)...
    assert _train_error(tmp_path, "--config", str(config), "--batch-size", "9").endswith("no such file")
    # ...and an option left out does not put the model's default over SPROUT_TRAIN__*
    get_settings.cache_clear()
    assert _train_error(tmp_path, "--config", str(config), env={"SPROUT_TRAIN__BATCH_SIZE": "6"}).endswith("no such file")
    get_settings.cache_clear()
    assert "learning_rate: Input should be less than or equal to 1" in _train_error(tmp_path, "--lr", "5")
    assert "learning_rate" in _train_error(tmp_path, "--learning-rate", "5")
    assert "gradient_accumulation_steps" in _train_error(tmp_path, "--grad-accum", "0")
    assert "torch_threads" in _train_error(tmp_path, "--threads", "-1")
    assert "gradient_checkpointing" in _train_error(tmp_path, "--gradient-checkpointing", "sometimes")


def test_filter_options_come_from_the_methods_params(tmp_path):
    from app.core.params import DecontaminationParams, SelfInstructParams

    text = _help(cli, "filter", "decontaminate")
    line = next(row for row in text.splitlines() if "--threshold " in row)
    assert f"[default: {DecontaminationParams.model_fields['decontaminate_threshold'].default}]" in line
    assert "(repeatable)" in next(row for row in text.splitlines() if "--field " in row)
    line = next(row for row in _help(cli, "filter", "novelty").splitlines() if "--threshold " in row)
    assert f"[default: {SelfInstructParams.model_fields['rouge_l_threshold'].default}]" in line

    data = tmp_path / "d.jsonl"
    data.write_text('{"instruction": "Write a poem."}\n', encoding="utf-8")
    result = CliRunner().invoke(cli, ["filter", "decontaminate", "--benchmark", str(data), "--input", str(data),
                                      "--out", str(tmp_path / "o.jsonl"), "--n", "0"])
    assert isinstance(result.exception, CliError)
    assert str(result.exception) == "--n: Input should be greater than or equal to 1"
    result = CliRunner().invoke(cli, ["filter", "novelty", "--pool", str(data), "--candidates", str(data),
                                      "--out", str(tmp_path / "o.jsonl"), "--top-k", "-1"])
    assert str(result.exception) == "--top-k: Input should be greater than or equal to 0"


@pytest.mark.parametrize(("given", "passed"), [
    ([], "all-linear"),
    (["q_proj"], ["q_proj"]),  # one name is a module, not PEFT's pattern
    (["q_proj", "v_proj"], ["q_proj", "v_proj"]),
])
def test_train_lora_target_modules_reach_the_trainer_as_names(tmp_path, fresh_settings, monkeypatch, given, passed):
    import app.core.training as training

    seen: list[TrainParams] = []
    monkeypatch.setattr(training, "run_training", lambda params, data, out, progress: seen.append(params) or {})
    data = tmp_path / "data.json"
    data.write_text("[]", encoding="utf-8")
    args = [arg for name in given for arg in ("--lora-target-modules", name)]
    result = CliRunner().invoke(cli, ["train", "--data", str(data), "--out", str(tmp_path / "o"), "--json", *args])
    assert result.exit_code == 0, result.output
    assert seen[0].lora_target_modules == passed
