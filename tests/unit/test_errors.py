"""The core's one error hierarchy (`app.core.errors`): every public error class of the core has
exactly one root, and the API answers each root with its status and the documented body."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

import app.core
from app.api.errors import install
from app.core import errors, store
from app.core.datasets import errors as ds_errors
from app.core.handoff.deliveries import CannotRetry
from app.core.jobs.registry import JobRequestError
from app.core.llm.client import LLMUnavailableError
from app.core.seeds import SeedFormatError

CONTROL_FLOW = {"app.core.jobs.lifecycle.JobStopped"}  # ends a run early; never reaches a caller


def _core_exceptions() -> list[type[BaseException]]:
    found = {}
    for info in pkgutil.walk_packages(app.core.__path__, "app.core."):
        module = importlib.import_module(info.name)
        for name, cls in vars(module).items():
            if (inspect.isclass(cls) and issubclass(cls, Exception) and cls.__module__ == info.name
                    and not name.startswith("_")):
                found[f"{cls.__module__}.{name}"] = cls
    return [cls for key, cls in sorted(found.items()) if key not in CONTROL_FLOW]


def test_every_public_core_error_has_one_root():
    classes = _core_exceptions()
    assert len(classes) > 30
    rootless = [f"{c.__module__}.{c.__name__}" for c in classes if not issubclass(c, errors.SproutError)]
    assert not rootless, rootless


@pytest.mark.parametrize(("exc", "root"), [
    (ds_errors.DatasetNotFound("no dataset named 'x'"), errors.NotFound),
    (ds_errors.DuplicateDataset("a dataset named 'x' exists"), errors.Conflict),
    (ds_errors.InvalidName("name: bad"), errors.InvalidInput),
    (CannotRetry("done"), errors.Conflict),
    (LLMUnavailableError("down"), errors.Unavailable),
])
def test_a_class_with_two_roots_resolves_to_the_one_it_names_first(exc, root):
    assert errors.root_of(exc) is root
    assert isinstance(exc, ValueError) or root is errors.Unavailable  # callers catching ValueError still do


def _app(exc: Exception) -> TestClient:
    app = FastAPI()
    install(app)

    @app.get("/boom")
    def boom() -> None:
        raise exc

    return TestClient(app, raise_server_exceptions=False)


@pytest.mark.parametrize(("exc", "status"), [
    (store.NotFound("no job with id 7"), 404),
    (ds_errors.VersionNotFound("dataset 'x' has no version 9"), 404),
    (ds_errors.VersionConflict("expected_latest: version 3 is not the latest"), 409),
    (CannotRetry("delivery 2 cannot be retried: it is done"), 409),
    (LLMUnavailableError("no LLM server reachable at http://127.0.0.1:1/v1"), 503),
])
def test_each_root_has_its_status_and_the_message_as_detail(exc, status):
    response = _app(exc).get("/boom")
    assert response.status_code == status
    assert response.json()["detail"] == str(exc)
    assert (response.headers.get("retry-after") is not None) == (status == 503)


def test_invalid_input_names_its_field():
    response = _app(JobRequestError("params.num_instructions", "must be at least 1")).get("/boom")
    assert response.status_code == 422
    assert response.json()["errors"] == [{"loc": ["body", "params", "num_instructions"],
                                          "msg": "must be at least 1", "type": "value_error"}]
    response = _app(errors.InvalidInput("too short", field="recipe.steps")).get("/boom")
    assert response.json()["errors"][0]["loc"] == ["body", "recipe", "steps"]


def test_invalid_input_without_a_field_reads_the_message_prefix():
    response = _app(ds_errors.InvalidName("name: must not be empty")).get("/boom")
    assert response.status_code == 422
    assert response.json()["errors"] == [{"loc": ["body", "name"], "msg": "must not be empty", "type": "value_error"}]


def test_a_seed_file_error_lists_every_bad_line():
    exc = SeedFormatError("line 2: instruction: missing", problems=["line 2: instruction: missing", "line 5: bad JSON"])
    body = _app(exc).get("/boom").json()
    assert body["error_count"] == 2 and body["detail"].startswith("seed file: line 2")
    assert [e["loc"] for e in body["errors"]] == [["body", "file"], ["body", "file"]]


def test_the_cli_prints_a_core_error_it_did_not_word_as_one_line(monkeypatch, capsys):
    """`sprout`'s entry point: a core error that leaves a command is one line and exit 1."""
    import app.cli as cli_module

    @cli_module.cli.command("raise-not-found-for-test", hidden=True)
    def _raise() -> None:
        raise store.NotFound("no job with id 41")

    monkeypatch.setattr("sys.argv", ["sprout", "raise-not-found-for-test"])
    try:
        with pytest.raises(SystemExit) as exit_info:
            cli_module.main()
    finally:
        cli_module.cli.registered_commands.pop()
    assert exit_info.value.code == 1
    err = capsys.readouterr().err
    assert "no job with id 41" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
