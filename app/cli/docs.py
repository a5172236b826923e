"""`sprout docs`: serve the documentation site (mkdocs, from the repository's `docs/`).

The site needs the `docs` extra (`pip install 'sprout[docs]'`); without it, or outside a
checkout that has `mkdocs.yml`, the command says so in one line. `--build` writes `site/`,
which `sprout api` then serves at `/docs/site/`.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import typer

from app.cli.common import CliError

ROOT = Path(__file__).resolve().parents[2]


def docs(
    port: int = typer.Option(8001, "--port", help="Port to serve on."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to serve on."),
    build: bool = typer.Option(False, "--build", help="Build the site into site/ (checked strictly) and exit."),
) -> None:
    """Serve the documentation site locally, with live reload (or --build it)."""
    if not (ROOT / "mkdocs.yml").is_file():
        raise CliError(f"no mkdocs.yml in {ROOT}: the docs are built from a checkout of the repository")
    try:
        import mkdocs  # noqa: F401
    except ImportError:
        raise CliError("the docs need the docs extra: pip install 'sprout[docs]' (scripts/setup.sh installs it)") from None
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    if build:
        args = ["build", "--strict"]
    else:
        args = ["serve", "--dev-addr", f"{host}:{port}"]
    code = subprocess.call([sys.executable, "-m", "mkdocs", *args], cwd=ROOT, env=env)
    if code:
        raise CliError(f"mkdocs {args[0]} failed (exit {code})")


def register(cli: typer.Typer) -> None:
    """Adds `sprout docs`."""
    cli.command("docs")(docs)
