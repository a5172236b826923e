"""The diversity report: distinct-n, each instruction's max ROUGE-L to the rest (held to
rouge-score itself), the verb-noun heuristic on hand-written cases, groups, and the report
through the API, the CLI and a bundle's card (real PostgreSQL)."""

from __future__ import annotations

import json
import random

import pytest
from rouge_score import rouge_scorer

from app.core import diversity
from app.core.datasets import versions as v
from app.core.handoff.bundle import write_bundle
from app.core.handoff.meta import HandoffMeta
from app.core.methods.candidates import CandidateRecord, InstanceCandidate
from app.core.verb_noun import verb_noun
from tests.dataset_fixtures import make_dataset, make_job, session_for
from tests.service_fixtures import api, api_settings, client, store_candidates  # noqa: F401

VERB_NOUN_CASES = {
    "Write a short poem about rain.": ("write", "poem"),
    "Give me three tips for sleeping well.": ("give", "tips"),
    "Write a 500-word essay on cats": ("write", "essay"),
    "Classify the sentiment of the sentence.": ("classify", "sentiment"),
    "Tell me a joke.": ("tell", "joke"),
    "Rewrite the following sentence so that it is passive.": ("rewrite", "sentence"),
    "Please summarize the article in two sentences.": ("summarize", "article"),
    "Can you suggest a name for my dog?": ("suggest", "name"),
    "Make the text more formal": ("make", "text"),
    "Generate a list of 5 ideas": ("generate", "list"),
    "Given a list of numbers, find the largest one.": ("find", "largest"),
    "Explain why the sky is blue.": ("explain", None),
    "What is the capital of France?": None,
    "Is this sentence grammatical?": None,
    "The weather is nice today.": None,
    "": None,
}


def test_verb_noun_on_hand_written_instructions():
    for text, expected in VERB_NOUN_CASES.items():
        assert verb_noun(text) == expected, text


def test_distinct_n_counts_distinct_over_all():
    tokens = [["a", "b", "a"], ["a", "b"]]
    assert diversity.distinct_n(tokens, 1) == 2 / 5
    assert diversity.distinct_n(tokens, 2) == 2 / 3  # (a b), (b a), (a b)
    assert diversity.distinct_n([[]], 2) is None


def test_max_rouge_to_the_rest_is_rouge_score_against_every_other_row():
    rng = random.Random(3)
    vocab = ["write", "a", "poem", "story", "list", "of", "words", "about", "the", "sea", "rain", "sun", "give", "me", "tips"]
    texts = [" ".join(rng.choice(vocab) for _ in range(rng.randint(1, 9))) for _ in range(60)]
    texts += [texts[5], "Completely unrelated zebra"]  # an exact copy scores 1.0; a row sharing nothing 0
    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
    expected = [max((scorer.score(t, o)["rougeL"].fmeasure for j, o in enumerate(texts) if j != i), default=0.0)
                for i, t in enumerate(texts)]
    assert diversity.max_rouge_to_rest(texts) == pytest.approx(expected, abs=1e-12)
    assert diversity.max_rouge_to_rest(texts)[5] == 1.0 and diversity.max_rouge_to_rest(texts)[-1] == 0.0
    assert diversity.max_rouge_to_rest(texts, [0, 61]) == pytest.approx([expected[0], expected[61]])
    assert diversity.max_rouge_to_rest(["only one"]) == [0.0]


def test_histogram_bins_include_one_in_the_last():
    h = diversity.histogram([0.0, 0.05, 0.1, 0.95, 1.0])
    assert h["counts"] == [2, 1, 0, 0, 0, 0, 0, 0, 0, 2] and h["edges"][0] == 0.0 and h["edges"][-1] == 1.0


def test_the_report_by_method_persona_and_topic():
    rows = [
        {"instruction": "Write a poem about the sea.", "method": "persona", "persona": "a sailor",
         "topic_path": ["Nature", "Sea"]},
        {"instruction": "Write a poem about the rain.", "method": "persona", "persona": "a farmer"},
        {"instruction": "List three uses of salt.", "method": "self_instruct",
         "lineage": [{"instruction": "List three uses of salt.", "persona": "a cook", "topic_path": ["Food"]}]},
        {"instruction": "What is the tallest mountain?", "method": "self_instruct"},
    ]
    report = diversity.report(rows)
    overall = report["overall"]
    assert overall["rows"] == 4 and not overall["max_rouge_l"]["sampled"]
    assert overall["verb_noun"]["with_verb_noun"] == 3 and overall["verb_noun"]["coverage"] == 0.75
    assert overall["verb_noun"]["top_verbs"][0] == {"verb": "write", "count": 2, "nouns": [{"noun": "poem", "count": 2}]}
    assert set(report["by"]) == {"method", "persona", "topic"}
    assert report["by"]["method"]["persona"]["rows"] == 2
    assert set(report["by"]["persona"]) == {"a sailor", "a farmer", "a cook"}  # the lineage root's persona counts
    assert set(report["by"]["topic"]) == {"Nature > Sea", "Food"}
    # the two poems are each other's nearest row
    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
    near = scorer.score(rows[0]["instruction"], rows[1]["instruction"])["rougeL"].fmeasure
    assert report["by"]["method"]["persona"]["max_rouge_l"]["mean"] == pytest.approx(near)
    sampled = diversity.report(rows * 10, rouge_sample=12)
    assert sampled["overall"]["max_rouge_l"]["sampled"] and sampled["overall"]["max_rouge_l"]["rows_scored"] == 12
    assert any(line.startswith("all: 4 rows") for line in diversity.text_lines(report))


SEEDS = "".join(f'{{"instruction": "Seed task number {i} asks for something."}}\n' for i in range(8))


@pytest.fixture
def job(api, pg_url):
    seed_set = api.ok("post", "/api/v1/seed-sets", 201, json={"name": "s", "content": SEEDS})["id"]
    job = api.ok("post", "/api/v1/jobs", 201, json={"kind": "self_instruct", "seed_set_id": seed_set,
                                                   "params": {"target": 3}})
    store_candidates(pg_url, job["id"], [
        CandidateRecord("Write a haiku about rain.", True, in_pool=True,
                        instances=[InstanceCandidate("", "Rain on the roof."), InstanceCandidate("x", "Rain again.")]),
        CandidateRecord("Write a haiku about snow.", True, in_pool=True, instances=[InstanceCandidate("", "Snow.")]),
        CandidateRecord("What is the boiling point of water?", True, in_pool=True,
                        instances=[InstanceCandidate("", "100 C.")]),
        CandidateRecord("Draw a map of the town.", False, rule="blacklist"),
    ])
    return job["id"]


def test_the_api_reports_a_job_and_a_dataset_version(api, job, pg_url):
    report = api.ok("get", f"/api/v1/jobs/{job}/diversity")
    assert report["source"] == {"kind": "job", "id": job, "method": "self_instruct"}
    overall = report["overall"]
    assert overall["rows"] == 3  # each instruction once, however many instances; the rejected one left out
    assert overall["max_rouge_l"]["histogram"]["counts"][-3:] != [0, 0, 0]  # the two haikus are close
    assert overall["verb_noun"]["top_verbs"][0]["verb"] == "write"
    assert list(report["by"]) == ["method"]
    assert api.get("/api/v1/jobs/4242/diversity").status_code == 404
    assert api.get(f"/api/v1/jobs/{job}/diversity?rouge_sample=1").status_code == 422

    with session_for(pg_url) as s:
        ds = make_dataset(s, name="spread")  # alice's, the API key's owner
        v.commit_version(s, ds, [v.NewExample("Write a haiku about rain.", "", "Rain.", "self_instruct"),
                                 v.NewExample("Sort the list.", "", "Done.", "evol_instruct")],
                         build_job_id=make_job(s))
        s.commit()
    version = api.ok("get", "/api/v1/datasets/spread/versions/latest/diversity")
    assert version["source"] == {"kind": "dataset_version", "dataset": "spread", "version": 1}
    assert set(version["by"]["method"]) == {"self_instruct", "evol_instruct"}
    assert api.get("/api/v1/datasets/spread/versions/9/diversity").status_code == 404
    assert api.get("/api/v1/datasets/nothing/versions/latest/diversity").status_code == 404


def test_the_cli_prints_the_report_and_one_line_errors(job, pg_url, monkeypatch, capsys):
    from typer.testing import CliRunner

    from app.cli import cli
    from app.cli.common import CliError

    monkeypatch.setenv("SPROUT_DATABASE_URL", pg_url)
    runner = CliRunner()
    out = runner.invoke(cli, ["diversity", "--job", str(job)])
    assert out.exit_code == 0, out.output
    assert "all: 3 rows, distinct-1" in out.output and "top verbs: write 2" in out.output
    out = runner.invoke(cli, ["diversity", "--job", str(job), "--json"])
    assert json.loads(out.output)["overall"]["rows"] == 3
    out = runner.invoke(cli, ["diversity"])
    assert isinstance(out.exception, CliError) and "give one of --job or --dataset" in str(out.exception)
    out = runner.invoke(cli, ["diversity", "--dataset", "nothing"])
    assert isinstance(out.exception, CliError) and "no dataset named 'nothing'" in str(out.exception)
    with session_for(pg_url) as s:  # the operator's dataset (no API key owner), as `sprout datasets` makes it
        ds = make_dataset(s, name="local", owner=None)
        v.commit_version(s, ds, [v.NewExample("Sort the list.", "", "Done.", "self_instruct")], build_job_id=make_job(s))
        s.commit()
    out = runner.invoke(cli, ["diversity", "--dataset", "local", "--version", "1"])
    assert out.exit_code == 0 and "all: 1 rows" in out.output


def test_a_bundles_card_has_the_diversity_section(tmp_path):
    rows = [{"id": i, "instruction": text, "input": "", "output": "ok", "method": "self_instruct", "job_id": 1}
            for i, text in enumerate(["Write a poem about the sea.", "Write a poem about rain.", "Sort the list."])]
    rows.append({**rows[0], "output": "another instance"})  # the same instruction: counted once
    write_bundle(rows, HandoffMeta(name="toy", source_kind="job", source_id=1), tmp_path / "b")
    card = (tmp_path / "b" / "README.md").read_text(encoding="utf-8")
    assert "## Diversity" in card and "Over 3 instructions (each counted once)" in card
    assert "| write | 2 | poem (2) |" in card


def _version_rows(n: int, instances: int = 1) -> list[dict]:
    """Rows as a version streams them: job rows with `instances` rows per source instruction,
    and every fifth instruction made outside a job (no source: counted by its row id)."""
    rows = []
    for i in range(n):
        outside = i % 5 == 0
        for k in range(1 if outside else instances):
            rows.append({"id": i * instances + k + 1, "instruction": f"Describe item number {i} in detail.",
                         "method": "self_instruct" if i % 2 else "evol_instruct",
                         "source_job_id": None if outside else 7, "source_instruction_id": None if outside else i,
                         "lineage": None})
    return rows


def test_a_small_versions_items_are_unchanged_by_the_bound():
    rows = _version_rows(30, instances=2)
    kept = diversity.bounded_version_items(rows, 40)
    assert kept.items == list(diversity.version_items(rows))  # the same items, in the same order
    assert kept.of == 54 and not kept.sampled and kept.marker() is None  # 24 job instructions x 2 + 6 rows
    exact = diversity.bounded_version_items(rows, 30)  # exactly the bound: still whole
    assert exact.items == kept.items and exact.marker() is None


def test_the_bounded_sample_is_seeded_bounded_marked_and_independent_of_the_order():
    rows = _version_rows(500, instances=3)
    kept = diversity.bounded_version_items(rows, 50)
    assert len(kept.items) == 50 and kept.marker() == {"rows": 50, "of": 1300}  # 400 x 3 + 100
    texts = [item["instruction"] for item in kept.items]
    assert len(set(texts)) == 50  # instances of one instruction count once
    assert texts == [item["instruction"] for item in diversity.bounded_version_items(rows, 50).items]
    shuffled = rows[:]
    random.Random(3).shuffle(shuffled)
    assert {item["instruction"] for item in diversity.bounded_version_items(shuffled, 50).items} == set(texts)
    other_seed = {item["instruction"] for item in diversity.bounded_version_items(rows, 50, seed=1).items}
    assert other_seed != set(texts)
    # kept in the order read, drawn from the whole stream (not its first rows)
    numbers = [int(t.split()[3]) for t in texts]
    assert numbers == sorted(numbers) and max(numbers) > 250
    # a smaller bound's sample is part of a larger one's (the lowest ranks)
    assert {i["instruction"] for i in diversity.bounded_version_items(rows, 20).items} <= set(texts)


def test_a_sampled_report_says_so_in_its_stored_form_card_and_text():
    from app.core import diversity_card

    kept = diversity.bounded_version_items(_version_rows(100), 25)
    report = diversity.report(kept.items)
    report["sampled"] = kept.marker()
    stored = diversity.stored_form(report)
    assert stored["sampled"] == {"rows": 25, "of": 100} and stored["overall"]["rows"] == 25
    card = "\n".join(diversity_card.section(stored))
    assert "Over a seeded sample of 25 instructions of the version's 100 rows (sampled:" in card
    assert any(line.startswith("(sampled: 25 instructions of 100 rows") for line in diversity.text_lines(stored))
    whole = diversity.stored_form(diversity.report(_version_rows(10)))
    assert "sampled" not in whole and "Over 10 instructions (each counted once)" in "\n".join(
        diversity_card.section(whole))
