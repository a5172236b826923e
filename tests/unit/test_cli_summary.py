"""The CLI's job summary shows the model server's utilisation, cache and limits."""

from types import SimpleNamespace

from rich.console import Console

from app.cli.generate import summary_table
from app.core import store


def render(counters):
    job = SimpleNamespace(id=7, kind="self_instruct", status="succeeded", counters=counters, result={},
                          started_at=None, finished_at=None)
    console = Console(width=200, record=True)
    console.print(summary_table(job))
    return console.export_text()


def test_summary_shows_utilisation_cached_tokens_and_limits():
    counters = {**store.empty_counters(), "prompt_tokens": 900, "completion_tokens": 300,
                "cached_prompt_tokens": 640, "llm_busy_share": 0.97, "llm_utilisation": 0.912,
                "llm_concurrency": {"http://a:8000/v1": 6}}
    text = render(counters)
    assert "prompt tokens from the server's cache" in text and "640" in text
    assert "97%" in text and "91%" in text
    assert "concurrency limit http://a:8000/v1" in text


def test_summary_of_an_older_job_without_the_new_counters():
    text = render(store.empty_counters())
    assert "busy" not in text and "cache" not in text


def test_summary_shows_tokens_per_second_the_cost_rate_and_the_contamination():
    counters = {**store.empty_counters(), "prompt_tokens": 900, "completion_tokens": 300, "llm_wall_s": 12.0}
    job = SimpleNamespace(id=8, kind="evol_instruct", status="succeeded", counters=counters, started_at=None,
                          finished_at=None,
                          result={"tokens_per_accepted": 400.0, "tokens_per_second": 100.0, "cost": 0.02,
                                  "cost_per_accepted": 0.006667, "cost_rate": "per_gpu_hour",
                                  "contamination": {"candidates_hit": 3, "benchmarks": {
                                      "eval tasks: default.jsonl (the trainer's default)": {
                                          "items_hit": 2, "hits": 3, "items": {"a": 2, "b": 1}}}}})
    console = Console(width=200, record=True)
    console.print(summary_table(job))
    text = console.export_text()
    assert "tokens per accepted example" in text and "400.0" in text
    assert "tokens/s (wall time on the model servers)" in text and "100.0 (12.0 s)" in text
    assert "cost (per accepted example), per GPU-hour" in text and "0.0200 (0.006667)" in text
    assert "contaminated candidates" in text and "eval tasks: default.jsonl (the trainer's default)" in text
    assert "2 item(s) hit" in text


def test_an_evol_estimate_from_a_job_that_cannot_be_evolved_is_one_line(sqlite_url, monkeypatch):
    from typer.testing import CliRunner

    from app.cli import cli
    from app.cli.common import CliError

    monkeypatch.setenv("SPROUT_DATABASE_URL", sqlite_url)
    result = CliRunner().invoke(cli, ["generate", "--method", "evol-instruct", "--from", "999", "--estimate"])
    assert result.exit_code != 0 and isinstance(result.exception, CliError)
    assert str(result.exception) == "source job 999 does not exist"


def test_an_evol_pilots_estimate_as_the_cli_prints_it():
    from app.cli.generate import estimate_table
    from app.core.budget import Budget
    from app.core.jobs.estimate import extrapolate_lineages

    est = extrapolate_lineages(50, 4, [2000, 3000, 4000], 6, {"prompt_tokens": 6000, "completion_tokens": 3000},
                               Budget(price_per_gpu_hour=3.6), seconds=90.0)
    console = Console(width=200, record=True)
    console.print(estimate_table(est))
    text = console.export_text()
    assert "estimate for 200 evolutions (pilot)" in text
    assert "pilot: accepted / tokens (prompt + completion)" in text and "6 / 6,000 + 3,000" in text
    assert "pilot time" in text and "90.0 s (100.0 tokens/s)" in text
    assert "evolutions expected to be kept" in text and "100" in text
    assert "100,000 + 50,000 = 150,000" in text and "100,000 – 200,000" in text
    assert "expected cost (range), per gpu hour" in text and "1.5000 (1.0000 – 2.0000)" in text
