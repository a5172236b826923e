"""The docs stay true: the generated reference pages match the code, every page is reachable,
the README stays short with links that resolve, and every module is on ARCHITECTURE.md's map."""

import re
from pathlib import Path

import yaml

from scripts.gen_reference import PAGES, REFERENCE, stale
from scripts.settings_table import table

ROOT = Path(__file__).resolve().parents[2]


def test_generated_reference_pages_are_current():
    assert not stale(), f"out of date: {stale()}; run .venv/bin/python scripts/gen_reference.py"


def test_settings_reference_holds_every_setting():
    page = (REFERENCE / "settings.md").read_text()
    assert table() in page
    from app.settings import FLAT_PREFIXES, Settings

    for name in Settings.model_fields:  # a configuration read from flat names under its prefix
        assert f"`SPROUT_{FLAT_PREFIXES.get(name, name).upper()}" in page, name


def test_cli_reference_names_every_command():
    import typer

    from app.cli import cli

    page = (REFERENCE / "cli.md").read_text()
    for name in typer.main.get_command(cli).commands:
        assert f"## `sprout {name}`" in page, name


def test_rest_reference_names_every_route():
    from app.asgi import create_app
    from app.settings import Settings

    page = (REFERENCE / "rest.md").read_text()
    for path, item in create_app(Settings()).openapi()["paths"].items():
        for method in item:
            assert f"### `{method.upper()} {path}`" in page, (method, path)


def _nav_files(node) -> list[str]:
    if isinstance(node, str):
        return [node]
    if isinstance(node, list):
        return [f for item in node for f in _nav_files(item)]
    if isinstance(node, dict):
        return [f for value in node.values() for f in _nav_files(value)]
    return []


def test_every_page_is_in_the_nav_and_every_nav_entry_exists():
    config = yaml.load((ROOT / "mkdocs.yml").read_text(), Loader=yaml.BaseLoader)
    nav = set(_nav_files(config["nav"]))
    pages = {str(p.relative_to(ROOT / "docs")) for p in (ROOT / "docs").rglob("*.md")}
    assert pages == nav, f"not in the nav: {sorted(pages - nav)}; missing: {sorted(nav - pages)}"
    assert set(PAGES) <= {Path(p).name for p in nav if p.startswith("reference/")}


def test_readme_is_short_and_its_links_resolve():
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) <= 150
    links = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text)
    assert links, "the README links into the docs"
    missing = [link for link in links if not link.startswith("http") and not (ROOT / link).exists()]
    assert not missing, f"README links to missing files: {missing}"


def test_architecture_names_every_module():
    text = (ROOT / "ARCHITECTURE.md").read_text()
    missing = []
    for base in ("app", "workers"):
        for path in sorted((ROOT / base).rglob("*.py")):
            rel = path.relative_to(ROOT)
            if path.name == "__init__.py":
                continue
            if str(rel) not in text and f"{rel.parent}/" not in text:
                missing.append(str(rel))
    assert not missing, f"ARCHITECTURE.md does not mention: {missing}"
