"""`sprout train`: fine-tune a model on a curated dataset."""

import typer


def register(cli: typer.Typer) -> None:
    """Adds the `train` command."""
