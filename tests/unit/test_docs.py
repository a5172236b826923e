"""The docs stay true: every setting is in the README, every module in ARCHITECTURE.md."""

from pathlib import Path

from scripts.settings_table import table

ROOT = Path(__file__).resolve().parents[2]


def test_readme_settings_table_is_current():
    readme = (ROOT / "README.md").read_text()
    assert table() in readme, "README settings table is stale: run .venv/bin/python scripts/update_readme.py"


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
