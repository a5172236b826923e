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
