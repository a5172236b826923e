"""`sprout diversity`: the diversity report of a job's curated data or of a dataset version.

Distinct-1/2 of the instructions, each instruction's maximum ROUGE-L to the others (a
histogram), verb-noun coverage, overall and by method, persona and topic
(`app.core.diversity`); a few lines of text, or the whole report as JSON.
"""

from __future__ import annotations

import json

import typer

from app.cli.common import CliError, console, database_url, load_settings
from app.core import diversity, diversity_sources, store
from app.core.datasets import tags
from app.core.datasets import versions as v
from app.core.datasets.errors import DatasetError
from app.db import session_scope

OWNER = None  # the operator's datasets, as `sprout datasets`


def report(url: str, job_id: int | None, dataset: str | None, version: str, rouge_sample: int) -> dict:
    if (job_id is None) == (dataset is None):
        raise CliError("give one of --job or --dataset")
    with session_scope(url) as session:
        try:
            if job_id is not None:
                return diversity_sources.job_report(session, store.get_job(session, job_id), rouge_sample=rouge_sample)
            found = v.get_dataset(session, OWNER, dataset)
            number = tags.resolve(session, found.id, version).number
            return diversity_sources.version_report(session, found, number, rouge_sample=rouge_sample)
        except (store.NotFound, DatasetError, ValueError) as exc:
            raise CliError(str(exc)) from None


def register(cli: typer.Typer) -> None:
    @cli.command("diversity")
    def diversity_cmd(
        job_id: int = typer.Option(None, "--job", help="A generation job: its curated instructions."),
        dataset: str = typer.Option(None, "--dataset", help="A dataset: the instructions of one of its versions."),
        version: str = typer.Option("latest", "--version", help="The version: a number, `latest` or a tag."),
        rouge_sample: int = typer.Option(5000, "--rouge-sample", min=10,
                                         help="Rows whose max ROUGE-L is looked up when there are more."),
        as_json: bool = typer.Option(False, "--json", help="Print the whole report as JSON."),
    ) -> None:
        """Distinct-1/2, max ROUGE-L to the rest and verb-noun coverage, overall and by method, persona, topic."""
        found = report(database_url(load_settings()), job_id, dataset, version, rouge_sample)
        if as_json:
            console.print_json(json.dumps(found))
            return
        for line in diversity.text_lines(found):
            console.print(line, markup=False, highlight=False, soft_wrap=True)
