"""`sprout api`, `sprout worker`, `sprout apikey ...`: the service's processes."""

import typer


def register(cli: typer.Typer) -> None:
    """Adds the service commands."""
