"""The axolotl snippet trains each turn's terminator, and the preflight checks it does,
under axolotl's own masking rules (`app.core.handoff.axolotl_rules`)."""

from __future__ import annotations

import json

import yaml

from app.core.handoff.axolotl_rules import IGNORE, axolotl_labels, turn_terminator
from app.core.handoff.bundle import write_bundle
from app.core.handoff.meta import HandoffMeta
from app.core.handoff.preflight import Preflight, PreflightOptions, check_rows
from app.core.methods.prompts import gemma_chat_template
from tests.handoff_fixtures import ROWS, tiny_model_dir, tiny_tokenizer  # noqa: F401

META = HandoffMeta(name="toy", source_kind="job", source_id=7)
CHATML = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
          "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
CONVERSATION = [{"role": "user", "content": "Add the numbers."}, {"role": "assistant", "content": "The sky is blue."}]


def _copy(tokenizer, template=None, extra=()):
    copy = tokenizer.__class__.from_pretrained(tokenizer.name_or_path)
    if extra:
        copy.add_tokens(list(extra), special_tokens=True)
    if template is not None:
        copy.chat_template = template
    return copy


def _trained(tokenizer, ids, labels):
    return [tokenizer.convert_ids_to_tokens(i) for i, label in zip(ids, labels) if label != IGNORE]


def test_without_eot_tokens_axolotl_masks_gemmas_terminator_and_with_them_trains_it(tiny_tokenizer):
    """What axolotl did with the old snippet: its default end-of-turn token is EOS, which
    Gemma's template never writes, so `<end_of_turn>` was masked in every row."""
    ids, labels = axolotl_labels(tiny_tokenizer, CONVERSATION, eot_tokens=None)
    assert "<end_of_turn>" in tiny_tokenizer.convert_ids_to_tokens(ids)
    assert "<end_of_turn>" not in _trained(tiny_tokenizer, ids, labels)
    ids, labels = axolotl_labels(tiny_tokenizer, CONVERSATION, eot_tokens=["<end_of_turn>"])
    trained = _trained(tiny_tokenizer, ids, labels)
    assert trained[-1] == "<end_of_turn>" and "<start_of_turn>" not in trained
    assert tiny_tokenizer.convert_tokens_to_string(trained[:-1]) == "The sky is blue."


def test_the_terminator_is_read_from_the_template(tiny_tokenizer):
    assert turn_terminator(tiny_tokenizer) == "<end_of_turn>"
    assert turn_terminator(_copy(tiny_tokenizer, CHATML, extra=["<|im_start|>", "<|im_end|>"])) == "<|im_end|>"
    assert turn_terminator(_copy(tiny_tokenizer, "{% for m in messages %}{{ m['content'] }}\n{% endfor %}")) is None


def test_the_bundles_snippet_sets_eot_tokens_and_axolotl_trains_the_terminator_in_every_row(tmp_path, tiny_tokenizer):
    bundle = write_bundle(ROWS, META, tmp_path / "b", preflight=Preflight(tiny_tokenizer, PreflightOptions(256)))
    assert bundle.deliverable
    [entry] = yaml.safe_load((tmp_path / "b" / "axolotl.yaml").read_text())["datasets"]
    assert entry["eot_tokens"] == ["<end_of_turn>"] and entry["train_on_eos"] == "turn"
    rows = [json.loads(line) for line in (tmp_path / "b" / entry["path"]).read_text().splitlines()]
    for row in rows:
        ids, labels = axolotl_labels(tiny_tokenizer, row[entry["field_messages"]], entry["eot_tokens"],
                                     tuple(entry["roles_to_train"]), entry["train_on_eos"])
        assert _trained(tiny_tokenizer, ids, labels).count("<end_of_turn>") == 1
    assert [c.ok for c in bundle.preflight.checks if c.name == "turn_terminator"] == [True]


def test_a_chatml_model_gets_its_own_terminator_in_the_snippet(tmp_path, tiny_tokenizer):
    chatml = _copy(tiny_tokenizer, CHATML, extra=["<|im_start|>", "<|im_end|>"])
    write_bundle(ROWS, META, tmp_path / "b", preflight=Preflight(chatml, PreflightOptions(256)))
    [entry] = yaml.safe_load((tmp_path / "b" / "axolotl.yaml").read_text())["datasets"]
    assert entry["eot_tokens"] == ["<|im_end|>"]


def test_a_terminator_axolotl_cannot_reach_fails_the_preflight(tiny_tokenizer):
    """axolotl looks for the end-of-turn token at most 3 tokens after the content; TRL's
    generation markers still cover it, so only axolotl's rules fail."""
    padded = gemma_chat_template().replace(
        "{% generation %}{{ message['content'] | trim }}<end_of_turn>{% endgeneration %}",
        "{% generation %}{{ message['content'] | trim }} 0 1 2 3 4 5<end_of_turn>{% endgeneration %}")
    assert padded != gemma_chat_template()
    report = check_rows(ROWS, _copy(tiny_tokenizer, padded), PreflightOptions(max_length=256))
    assert report.failed_checks() == ["turn_terminator"]
    problems = [p for p in report.problems if p.check == "turn_terminator"]
    assert [(p.index, p.id) for p in problems] == [(i, r["id"]) for i, r in enumerate(ROWS)]
    assert "axolotl's rules" in problems[0].reason and "TRL" not in problems[0].reason
