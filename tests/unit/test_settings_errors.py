"""A bad setting is one line naming the variable and the value's problem, from every CLI
command and at API and worker start, never a traceback; list settings take the JSON list
form as well as the comma-separated one."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.service_fixtures import ROOT, SPROUT

BAD = {
    "SPROUT_LLM_BASE_URLS": ("ftp://gpu1/v1", "SPROUT_LLM_BASE_URLS: not an http(s) URL: 'ftp://gpu1/v1'"),
    "SPROUT_LLM_CONCURRENCY": ("many", "SPROUT_LLM_CONCURRENCY: "),
    "SPROUT_HANDOFF__MAX_ATTEMPTS": ("0", "SPROUT_HANDOFF__MAX_ATTEMPTS: "),
}


def _env(tmp_path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPROUT_")}
    env.update(PYTHONPATH=str(ROOT), SPROUT_DATA_DIR=str(tmp_path / "data"), **extra)
    return env


def _run(argv: list[str], env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout, check=False)


def _one_line_error(result: subprocess.CompletedProcess, expected: str) -> None:
    assert result.returncode != 0, result.stdout
    assert "Traceback" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert expected in lines[0], lines[0]


def test_a_json_list_of_urls_is_read_as_a_list(monkeypatch):
    from app.settings import Settings

    monkeypatch.setenv("SPROUT_LLM_BASE_URLS", '["http://gpu1:8000/v1", "http://gpu2:8000"]')
    monkeypatch.setenv("SPROUT_JUDGE_BASE_URLS", "http://judge:8000/v1, http://judge2:8000/v1")
    settings = Settings()
    assert settings.llm.base_urls == ("http://gpu1:8000/v1", "http://gpu2:8000")
    assert settings.judge.base_urls == ("http://judge:8000/v1", "http://judge2:8000/v1")
    assert settings.core_config().llm.base_urls == ("http://gpu1:8000/v1", "http://gpu2:8000")


@pytest.mark.parametrize("value", ['["http://gpu1:8000/v1",', '[1, 2]', '{"a": 1}'])
def test_a_broken_json_list_is_named(monkeypatch, value):
    from app.settings import SettingsError, get_settings

    monkeypatch.setenv("SPROUT_LLM_BASE_URLS", value)
    get_settings.cache_clear()
    try:
        with pytest.raises(SettingsError, match=r"^SPROUT_LLM_BASE_URLS: ") as caught:
            get_settings()
    finally:
        get_settings.cache_clear()
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("command", [
    ["generate", "-n", "2"], ["jobs", "list"], ["handoff", "deliveries"], ["datasets", "list"],
    ["db", "upgrade"],
])
def test_every_cli_command_answers_a_bad_url_in_one_line(tmp_path, command):
    env = _env(tmp_path, SPROUT_LLM_BASE_URLS='["http://gpu1:8000/v1", "gpu2"]')
    _one_line_error(_run([str(SPROUT), *command], env), "SPROUT_LLM_BASE_URLS: not an http(s) URL: 'gpu2'")


@pytest.mark.parametrize("variable", sorted(BAD))
def test_a_bad_value_of_any_setting_is_one_line(tmp_path, variable):
    value, expected = BAD[variable]
    _one_line_error(_run([str(SPROUT), "jobs", "list"], _env(tmp_path, **{variable: value})), expected)


def test_the_api_and_the_worker_refuse_to_start_in_one_line(tmp_path):
    env = _env(tmp_path, SPROUT_LLM_CONCURRENCY="many")
    for argv in ([str(SPROUT), "api", "--port", "0"], [str(SPROUT), "worker"], [str(SPROUT), "beat"],
                 [sys.executable, "-m", "uvicorn", "app.asgi:create_app", "--factory", "--port", "0"],
                 [sys.executable, "-m", "celery", "-A", "workers.celery_app", "worker", "--pool", "solo"]):
        _one_line_error(_run(argv, env), "SPROUT_LLM_CONCURRENCY: ")
