"""placeholder"""
import typer


def register(cli: typer.Typer) -> None:
    pass
