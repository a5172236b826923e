"""`sprout filter ...`: the novelty and near-duplicate filters on any dataset."""

import typer

app = typer.Typer(help="Run Sprout's filters on any dataset.", no_args_is_help=True)
