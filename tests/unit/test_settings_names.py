"""Every documented `SPROUT_*` name still sets what it set before the configurations were
nested (`SPROUT_LLM_MODEL` -> `Settings.llm.model`), from the environment, from keyword
arguments and from the TOML file; the settings reference lists exactly these names."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from app.settings import Settings, SettingsError, get_settings
from scripts.gen_reference import REFERENCE

# name -> (a value other than the default, as the environment gives it, where it lands, the value there)
NAMES: dict[str, tuple[str, tuple[str, ...], object]] = {
    "SPROUT_LLM_BASE_URLS": ("http://gpu1:8000/v1, http://gpu2:8000/v1", ("llm", "base_urls"),
                             ("http://gpu1:8000/v1", "http://gpu2:8000/v1")),
    "SPROUT_LLM_MODEL": ("gen-model", ("llm", "model"), "gen-model"),
    "SPROUT_LLM_API_KEY": ("k1", ("llm", "api_key"), "k1"),
    "SPROUT_LLM_CONCURRENCY": ("3", ("llm", "concurrency"), 3),
    "SPROUT_LLM_CONCURRENCY_MIN": ("2", ("llm", "concurrency_min"), 2),
    "SPROUT_LLM_CONCURRENCY_MAX": ("9", ("llm", "concurrency_max"), 9),
    "SPROUT_LLM_ADAPTIVE_CONCURRENCY": ("false", ("llm", "adaptive_concurrency"), False),
    "SPROUT_LLM_STREAM": ("0", ("llm", "stream"), False),
    "SPROUT_LLM_FIRST_TOKEN_TIMEOUT_S": ("7.5", ("llm", "first_token_timeout_s"), 7.5),
    "SPROUT_LLM_INACTIVITY_TIMEOUT_S": ("6", ("llm", "inactivity_timeout_s"), 6.0),
    "SPROUT_LLM_TIMEOUT_S": ("11", ("llm", "timeout_s"), 11.0),
    "SPROUT_LLM_MAX_RETRIES": ("2", ("llm", "max_retries"), 2),
    "SPROUT_LLM_BACKOFF_S": ("0.25", ("llm", "backoff_s"), 0.25),
    "SPROUT_LLM_BACKOFF_MAX_S": ("4", ("llm", "backoff_max_s"), 4.0),
    "SPROUT_LLM_OUTAGE_BUDGET_S": ("9", ("llm", "outage_budget_s"), 9.0),
    "SPROUT_LLM_DIALECT": ("chat", ("llm", "dialect"), "chat"),
    "SPROUT_LLM_STRUCTURED_OUTPUTS": ("false", ("llm", "structured_outputs"), False),
    "SPROUT_LLM_PRICE_PER_MILLION_TOKENS": ("0.5", ("llm", "price_per_million_tokens"), 0.5),
    "SPROUT_RESPONDER_BASE_URLS": ('["http://r:8000/v1"]', ("responder", "base_urls"), ("http://r:8000/v1",)),
    "SPROUT_RESPONDER_MODEL": ("resp-model", ("responder", "model"), "resp-model"),
    "SPROUT_RESPONDER_API_KEY": ("k2", ("responder", "api_key"), "k2"),
    "SPROUT_RESPONDER_DIALECT": ("completions", ("responder", "dialect"), "completions"),
    "SPROUT_RESPONDER_PRICE_PER_MILLION_TOKENS": ("1.5", ("responder", "price_per_million_tokens"), 1.5),
    "SPROUT_JUDGE_BASE_URLS": ("http://j:8000/v1", ("judge", "base_urls"), ("http://j:8000/v1",)),
    "SPROUT_JUDGE_MODEL": ("judge-model", ("judge", "model"), "judge-model"),
    "SPROUT_JUDGE_API_KEY": ("k3", ("judge", "api_key"), "k3"),
    "SPROUT_JUDGE_API": ("chat", ("judge", "api"), "chat"),
    "SPROUT_JUDGE_CONCURRENCY": ("5", ("judge", "concurrency"), 5),
    "SPROUT_JUDGE_LOGPROBS": ("false", ("judge", "logprobs"), False),
    "SPROUT_JUDGE_PRICE_PER_MILLION_TOKENS": ("2.5", ("judge", "price_per_million_tokens"), 2.5),
    "SPROUT_EMBEDDED_HOST": ("127.0.0.2", ("embedded", "host"), "127.0.0.2"),
    "SPROUT_EMBEDDED_PORT": ("18555", ("embedded", "port"), 18555),
    "SPROUT_EMBEDDED_PARALLEL": ("2", ("embedded", "parallel"), 2),
    "SPROUT_EMBEDDED_THREADS": ("3", ("embedded", "threads"), 3),
    "SPROUT_EMBEDDED_CTX_PER_SLOT": ("1024", ("embedded", "ctx_per_slot"), 1024),
    "SPROUT_EMBEDDED_MODEL_PATH": ("/models/m.gguf", ("embedded", "model_path"), Path("/models/m.gguf")),
    "SPROUT_EMBEDDED_MODEL": ("SmolLM2", ("embedded", "model"), "smollm2-135m-instruct"),
    "SPROUT_EMBEDDED_PROMPT_CACHE": ("false", ("embedded", "prompt_cache"), False),
    "SPROUT_JOB_BATCH_SIZE": ("4", ("jobs", "batch_size"), 4),
    "SPROUT_JOB_FLUSH_S": ("0.5", ("jobs", "flush_s"), 0.5),
    "SPROUT_JOB_STALE_S": ("5", ("jobs", "stale_s"), 5.0),
}
NESTED = {"llm": "SPROUT_LLM_", "responder": "SPROUT_RESPONDER_", "judge": "SPROUT_JUDGE_",
          "embedded": "SPROUT_EMBEDDED_", "jobs": "SPROUT_JOB_"}


def _at(settings: Settings, path: tuple[str, ...]) -> object:
    value: object = settings
    for part in path:
        value = getattr(value, part)
    return value


@pytest.fixture
def clean_env(monkeypatch):
    import os

    for key in list(os.environ):
        if key.upper().startswith("SPROUT_"):
            monkeypatch.delenv(key)
    return monkeypatch


@pytest.mark.parametrize("name", sorted(NAMES))
def test_each_name_sets_its_field_from_the_environment(clean_env, name):
    raw, path, expected = NAMES[name]
    assert _at(Settings(), path) != expected  # the value below is not the default
    clean_env.setenv(name, raw)
    assert _at(Settings(), path) == expected
    clean_env.setenv(name.lower(), raw)  # as case-insensitive as every other variable
    clean_env.delenv(name)
    assert _at(Settings(), path) == expected


def test_flat_keyword_arguments_and_toml_keys_set_the_same_fields(clean_env, tmp_path):
    values = {name.removeprefix("SPROUT_").lower(): raw for name, (raw, _, _) in NAMES.items()}
    by_keyword = Settings(**values)
    toml = tmp_path / "sprout.toml"
    toml.write_text("".join(f"{key} = {raw!r}\n" for key, raw in values.items()))
    clean_env.setenv("SPROUT_CONFIG", str(toml))
    from_file = Settings()
    for _, path, expected in NAMES.values():
        assert _at(by_keyword, path) == expected and _at(from_file, path) == expected, path


def test_a_flat_variable_wins_over_the_file_and_the_nested_spelling_works(clean_env, tmp_path):
    toml = tmp_path / "sprout.toml"
    toml.write_text('llm_model = "from-file"\nllm_concurrency = 5\n')
    clean_env.setenv("SPROUT_CONFIG", str(toml))
    clean_env.setenv("SPROUT_LLM_MODEL", "from-env")
    settings = Settings()
    assert (settings.llm.model, settings.llm.concurrency) == ("from-env", 5)
    clean_env.setenv("SPROUT_LLM__CONCURRENCY", "6")
    assert Settings().llm.concurrency == 6
    assert Settings(llm_concurrency=2).llm.concurrency == 2  # keyword arguments first, as before


def test_the_core_gets_the_configuration_whole(clean_env):
    for name, (raw, _, _) in NAMES.items():
        clean_env.setenv(name, raw)
    settings = Settings()
    core = settings.core_config()
    assert core.llm == settings.llm
    assert core.prices == {"generator": 0.5, "responder": 1.5, "judge": 2.5}
    assert core.responder == settings.llm.model_copy(update={
        "base_urls": ("http://r:8000/v1",), "model": "resp-model", "api_key": "k2", "dialect": "completions"})
    assert core.judge.llm == settings.llm.model_copy(update={
        "base_urls": ("http://j:8000/v1",), "model": "judge-model", "api_key": "k3", "concurrency": 5})
    assert (core.judge.api, core.judge.logprobs) == ("chat", False)
    assert core.embedded == settings.embedded and core.embedded.model == "smollm2-135m-instruct"
    assert core.jobs == settings.jobs and (core.jobs.batch_size, core.jobs.flush_s, core.jobs.stale_s) == (4, 0.5, 5.0)


@pytest.mark.parametrize("name", ["SPROUT_LLM_MAX_RETRIES", "SPROUT_JOB_FLUSH_S"])
def test_a_bad_nested_value_is_named_by_its_flat_variable(clean_env, name):
    clean_env.setenv(name, "-1")
    get_settings.cache_clear()
    try:
        with pytest.raises(SettingsError, match=rf"^{name}: .*\(got '-1'\)"):
            get_settings()
    finally:
        get_settings.cache_clear()


def test_the_reference_documents_every_name():
    documented = set(re.findall(r"^\| `(SPROUT_[A-Z0-9_]+)`", (REFERENCE / "settings.md").read_text(), re.M))
    assert set(NAMES) <= documented
    for name, prefix in NESTED.items():
        for field in Settings.model_fields[name].annotation.model_fields:
            assert f"{prefix}{field.upper()}" in NAMES, field


def test_the_embedded_server_is_built_from_its_configuration_whole(clean_env, tmp_path):
    from app.core.llm.embedded import EmbeddedServer

    for name, (raw, path, _) in NAMES.items():
        if path[0] == "embedded":
            clean_env.setenv(name, raw)
    settings = Settings(data_dir=tmp_path)
    server = EmbeddedServer.from_config(settings.core_config().embedded, settings.data_dir)
    assert server.data_dir == tmp_path
    assert {field: getattr(server, field) for field in type(settings.embedded).model_fields} == settings.embedded.model_dump()
