"""The hand-off guide's TRL examples, run as written on a bundle (the tiny model in place of Gemma,
and on a machine without a GPU, bf16 off):
TRL must train on the chat format the preflight checked, turn markers included, with the
loss on the answers and their turn terminator only."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from app.core.handoff.bundle import write_bundle
from app.core.handoff.meta import HandoffMeta
from tests.handoff_fixtures import ROWS, tiny_model_dir, user_turn  # noqa: F401

ROOT = Path(__file__).resolve().parents[2]
META = HandoffMeta(name="rain", source_kind="job", source_id=7)


def _trl_blocks(text: str) -> list[str]:
    return [b for b in re.findall(r"```python\n(.*?)```", text, re.S) if "from trl import" in b]


def _run(block: str, bundle: Path, model: Path, out: Path) -> dict:
    """The block with the bundle's path, the tiny model and a scratch output folder put in."""
    code = re.sub(r'"(?:/mnt/shared/sprout/[^"]*?/(?:latest|v\d+)|path/to/this/folder)(/[^"]*)?"',
                  lambda m: f'"{bundle}{m.group(1) or ""}"', block)
    code = re.sub(r'data_files="([\w.]+)"', lambda m: f'data_files="{bundle / m.group(1)}"', code)
    code = code.replace('"google/gemma-3-270m"', f'"{model}"').replace('output_dir="out"', f'output_dir="{out}"')
    assert str(bundle) in code and str(model) in code
    import torch

    if not torch.cuda.is_available():  # TRL turns bf16 on by default, which a CPU-only machine refuses
        code = code.replace("SFTConfig(", "SFTConfig(use_cpu=True, bf16=False, ")
    namespace: dict = {}
    exec(compile(code, "hand-off guide example", "exec"), namespace)
    return namespace


def _examples() -> list[tuple[str, str]]:
    pages = ("docs/guides/handoff.md", "docs/guides/dataset-versions-handoff.md")
    found = [b for page in pages for b in _trl_blocks((ROOT / page).read_text(encoding="utf-8"))]
    assert len(found) >= 2  # the job hand-off and the dataset version hand-off
    return [(f"guide-{i}", b) for i, b in enumerate(found)]


@pytest.fixture
def bundle(tmp_path):
    return write_bundle(ROWS, META, tmp_path / "rain").path


@pytest.mark.parametrize(("name", "block"), _examples() + [("card", None)])
def test_the_trl_example_trains_on_the_chat_format(name, block, bundle, tiny_model_dir, tmp_path):
    if block is None:
        block = _trl_blocks((bundle / "README.md").read_text(encoding="utf-8"))[0]
    namespace = _run(block, bundle, tiny_model_dir, tmp_path / "out")
    trainer = namespace["trainer"]
    assert trainer.state.global_step > 0  # it trained
    tokenizer = trainer.processing_class
    prepared = trainer.train_dataset
    assert len(prepared) == len(ROWS)
    for got, row in zip(prepared, ROWS, strict=True):
        text = tokenizer.decode(got["input_ids"])
        assert text.count("<start_of_turn>user\n") == 1 and text.count("<start_of_turn>model\n") == 1
        assert user_turn(row) in text and text.count("<end_of_turn>") == 2
        trained = tokenizer.decode([t for t in got["labels"] if t != -100])
        assert trained == row["output"] + "<end_of_turn>"



def test_the_example_trains_on_gemmas_stock_template_too(bundle, tmp_path):
    """google/gemma-3-270m ships a template without `{% generation %}` markers; with
    `assistant_only_loss` TRL swaps in its training twin, so the example holds for it."""
    from trl.chat_template_utils import gemma3_chat_template, has_generation_markers

    from tests.training_fixtures import build_tiny_llama

    assert not has_generation_markers(gemma3_chat_template)
    model = build_tiny_llama(tmp_path / "stock", chat_template=gemma3_chat_template)
    trainer = _run(_examples()[0][1], bundle, model, tmp_path / "out")["trainer"]
    tokenizer = trainer.processing_class
    for got, row in zip(trainer.train_dataset, ROWS, strict=True):
        assert "<start_of_turn>model\n" in tokenizer.decode(got["input_ids"])
        assert tokenizer.decode([t for t in got["labels"] if t != -100]) == row["output"] + "<end_of_turn>\n"
