"""docker-compose.yml stays runnable: every Sprout service runs a real `sprout` command
with options that parse, and every SPROUT_* variable is a setting."""

from pathlib import Path

import pytest
import typer
import yaml
from pydantic import BaseModel
from typer.testing import CliRunner

from app.cli import cli
from app.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
SPROUT_SERVICES = {name: s for name, s in SERVICES.items() if "build" in s or str(s.get("image", "")).startswith("sprout")}


def test_the_expected_services_exist():
    assert {"api", "worker", "training-worker", "beat", "redis", "postgres", "vllm"} <= set(SERVICES)
    assert {"api", "worker", "training-worker", "beat", "migrate"} <= set(SPROUT_SERVICES)
    assert SERVICES["vllm"]["image"].startswith("vllm/vllm-openai")
    for name in ("api", "redis", "postgres", "vllm", "worker", "training-worker"):
        assert "healthcheck" in SERVICES[name], name


def _is_group(command) -> bool:
    return hasattr(command, "commands")


def _resolve(args: list[str]):
    """The command that `sprout <args>` runs, the words naming it, and its own arguments."""
    command = typer.main.get_command(cli)
    path: list[str] = []
    rest = list(args)
    while _is_group(command) and rest and rest[0] in command.commands:
        path.append(rest[0])
        command = command.commands[rest.pop(0)]
    return command, path, rest


@pytest.mark.parametrize("name", sorted(SPROUT_SERVICES))
def test_each_service_runs_a_real_sprout_command(name):
    args = [str(a) for a in SPROUT_SERVICES[name]["command"]]
    command, path, rest = _resolve(args)
    assert path and not _is_group(command), f"{name}: `sprout {' '.join(args)}` is not a command"
    result = CliRunner().invoke(cli, [*path, "--help"])
    assert result.exit_code == 0, result.output
    command.make_context(" ".join(["sprout", *path]), rest)  # the options and their values parse


def _is_setting(name: str) -> bool:
    from app.settings import FLAT_PREFIXES

    flat = name.removeprefix("SPROUT_").lower()
    for nested, prefix in FLAT_PREFIXES.items():  # SPROUT_LLM_MODEL is Settings.llm.model
        if flat.startswith(prefix) and flat[len(prefix):] in Settings.model_fields[nested].annotation.model_fields:
            return True
    parts = flat.split("__")
    model: type[BaseModel] = Settings
    for i, part in enumerate(parts):
        field = model.model_fields.get(part)
        if field is None:
            return False
        if i < len(parts) - 1:
            if not (isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel)):
                return False
            model = field.annotation
    return True


def test_every_sprout_variable_is_a_setting():
    names = set()
    for service in SERVICES.values():
        env = service.get("environment") or {}
        keys = env.keys() if isinstance(env, dict) else [e.split("=", 1)[0] for e in env]
        names |= {k for k in keys if k.startswith("SPROUT_")}
    assert {"SPROUT_DATABASE_URL", "SPROUT_REDIS_URL", "SPROUT_LLM_BASE_URLS"} <= names
    unknown = sorted(n for n in names if not _is_setting(n))
    assert not unknown, f"not settings: {unknown}"


def test_the_dockerfile_runs_sprout():
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert 'ENTRYPOINT ["sprout"]' in dockerfile
    for path in ("app", "workers", "migrations"):
        assert f"COPY {path} ./{path}" in dockerfile
