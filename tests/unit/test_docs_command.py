"""`sprout docs --build` builds the site strictly, and the API serves a built site at /docs/site/."""

from fastapi.testclient import TestClient
from typer.testing import CliRunner

from app.api import main
from app.cli import cli


def test_docs_build_writes_the_site():
    result = CliRunner().invoke(cli, ["docs", "--build"])
    assert result.exit_code == 0, result.output
    index = (main.DOCS_SITE / "index.html").read_text()
    assert "Sprout" in index and "fonts.googleapis.com" not in index


def test_api_serves_a_built_site(tmp_path, monkeypatch, sqlite_url):
    from app.settings import Settings

    (tmp_path / "index.html").write_text("<html><title>Sprout docs</title></html>")
    (tmp_path / "guides").mkdir()
    (tmp_path / "guides" / "vllm.html").write_text("<html>vLLM</html>")
    monkeypatch.setattr(main, "DOCS_SITE", tmp_path)
    client = TestClient(main.create_app(Settings(database_url=sqlite_url)))  # no lifespan: no database needed
    assert "Sprout docs" in client.get("/docs/site/").text
    assert client.get("/docs/site/guides/vllm.html").text == "<html>vLLM</html>"
    assert client.get("/docs/site/nope.html").status_code == 404
    assert client.get("/docs").status_code == 200  # the interactive API docs stay where they were


def test_no_site_no_route(tmp_path, monkeypatch, sqlite_url):
    from app.settings import Settings

    monkeypatch.setattr(main, "DOCS_SITE", tmp_path / "missing")
    client = TestClient(main.create_app(Settings(database_url=sqlite_url)))
    assert client.get("/docs/site/").status_code == 404
