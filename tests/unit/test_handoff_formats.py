"""Every hand-off format round-trips: written, then read back by the library its users use —
`datasets` for Parquet and the JSON files, TRL's SFTTrainer data preparation for messages
and prompt-completion, and LLaMA-Factory's loading rules (through `dataset_info.json`) for
every file it can read."""

from __future__ import annotations

import json
import zipfile

import pytest
import yaml

from app.core import export
from app.core.handoff import formats
from app.core.handoff.bundle import BundleOptions, write_bundle
from app.core.handoff.meta import HandoffMeta
from app.core.handoff.trainer_configs import check_dataset_info, dataset_info, entry_name
from tests import llamafactory_rules as lf
from tests.handoff_fixtures import ROWS, tiny_model_dir, tiny_tokenizer, user_turn  # noqa: F401

META = HandoffMeta(name="toy", source_kind="job", source_id=7)


@pytest.fixture
def bundle_dir(tmp_path):
    write_bundle(ROWS, META, tmp_path / "b", BundleOptions(rows_per_shard=2))
    return tmp_path / "b"


def _load(*args, **kwargs):
    from datasets import load_dataset

    return load_dataset(*args, split="train", **kwargs)


def test_parquet_is_the_hub_layout_and_datasets_reads_it_as_is(bundle_dir):
    shards = sorted(p.name for p in (bundle_dir / "data").iterdir())
    assert shards == ["train-00000-of-00003.parquet", "train-00001-of-00003.parquet", "train-00002-of-00003.parquet"]
    by_data_dir = _load("parquet", data_dir=str(bundle_dir / "data"))
    by_folder = _load(str(bundle_dir))  # the card's `configs` name the Parquet folder as the default
    for ds in (by_data_dir, by_folder):
        assert ds.column_names == list(export.PARQUET_COLUMNS)
        assert [r["id"] for r in ds] == [r["id"] for r in ROWS]
        for got, row in zip(ds, ROWS, strict=True):
            assert (got["instruction"], got["input"], got["output"]) == (row["instruction"], row["input"], row["output"])
            assert got["method"] == row["method"] and got["job_id"] == row["job_id"]
            assert got["messages"][-2:] == [{"role": "user", "content": user_turn(row)},
                                            {"role": "assistant", "content": row["output"]}]
            assert got["system"] == row.get("system")
            assert (json.loads(got["lineage"]) if got["lineage"] else None) == row.get("lineage")
            assert (json.loads(got["scores"]) if got["scores"] else None) == row.get("scores")
    assert by_folder[2]["messages"][0] == {"role": "system", "content": "Answer with one word."}


def test_a_parquet_folder_alone_loads_by_its_layout(tmp_path):
    """Without a card: `load_dataset(folder)` finds `data/train-*` by the Hub's naming."""
    written = formats.write_parquet_folder(ROWS, tmp_path / "p", rows_per_shard=10)
    assert written.rows == 5 and written.shards == ["train-00000-of-00001.parquet"]
    assert [r["output"] for r in _load(str(tmp_path / "p"))] == [r["output"] for r in ROWS]
    with pytest.raises(FileExistsError):
        formats.write_parquet_folder(ROWS, tmp_path / "p")


def test_the_parquet_zip_unzips_into_a_loadable_folder(tmp_path):
    written = formats.write_parquet_zip(ROWS, tmp_path / "x.parquet.zip", rows_per_shard=3)
    assert written.rows == 5 and [p.name for p in tmp_path.iterdir()] == ["x.parquet.zip"]  # nothing left over
    with zipfile.ZipFile(tmp_path / "x.parquet.zip") as zf:
        assert zf.namelist() == ["data/train-00000-of-00002.parquet", "data/train-00001-of-00002.parquet"]
        zf.extractall(tmp_path / "unzipped")
    assert [r["id"] for r in _load(str(tmp_path / "unzipped"))] == [r["id"] for r in ROWS]


def test_json_files_load_in_datasets(bundle_dir):
    assert [m["messages"][-1]["content"] for m in _load("json", data_files=str(bundle_dir / "messages.jsonl"))] == \
        [r["output"] for r in ROWS]
    sharegpt = _load("json", data_files=str(bundle_dir / "sharegpt.jsonl"))
    assert sharegpt[0]["conversations"] == [{"from": "human", "value": "Add the numbers.\n\n2 + 3"},
                                            {"from": "gpt", "value": "5"}]
    assert sharegpt[2]["system"] == "Answer with one word."
    alpaca = _load("json", data_files=str(bundle_dir / "alpaca.json"))
    assert [r["output"] for r in alpaca] == [r["output"] for r in ROWS]


def test_streamed_alpaca_is_the_list_dumped_whole(tmp_path):
    for rows in (ROWS, ROWS[:1], []):
        writer = formats.JsonWriter("alpaca", tmp_path, f"a{len(rows)}.json")
        for row in rows:
            writer.add(row)
        writer.close()
        whole = json.dumps([export.to_record(r, "alpaca") for r in rows], ensure_ascii=False, indent=2) + "\n"
        assert (tmp_path / f"a{len(rows)}.json").read_text(encoding="utf-8") == whole


def test_a_bad_row_leaves_no_file_behind(tmp_path):
    bad = [*ROWS[:2], {"id": "not-a-number", "instruction": "x", "input": "", "output": "y"}]
    with pytest.raises(formats.FormatError, match="row 2: id must be an integer"):
        formats.write_all(bad, [formats.open_writer(f, tmp_path) for f in formats.FORMATS])
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(formats.FormatError, match="'output' must be a string"):
        write_bundle([{"id": 1, "instruction": "x", "input": ""}], META, tmp_path / "b")
    assert list(tmp_path.iterdir()) == []


def test_writers_hold_at_most_one_row_group(tmp_path):
    """Constant memory: the Parquet writer buffers one row group, the JSON writers nothing."""
    writer = formats.ParquetWriter(tmp_path, rows_per_shard=10_000)
    seen = 0
    for i in range(2500):
        writer.add({"id": i, "instruction": f"Task {i}.", "input": "", "output": "ok"})
        seen = max(seen, len(writer.buffer))
    assert seen <= formats.ROW_GROUP_ROWS
    assert writer.close().rows == 2500


# --- LLaMA-Factory, through dataset_info.json ------------------------------------------------
def test_llamafactory_maps_every_row_of_every_entry(bundle_dir):
    info = json.loads((bundle_dir / "dataset_info.json").read_text())
    assert set(info) == {entry_name("toy", f) for f in formats.FORMATS}
    assert info["toy_sharegpt"]["formatting"] == "sharegpt" and info["toy_alpaca"]["formatting"] == "alpaca"
    for name in info:
        examples = lf.load_entry(bundle_dir, name)
        assert len(examples) == len(ROWS) and all(lf.valid(e) for e in examples), name
        if name == "toy_parquet":  # a folder's files are read in os.listdir's order
            examples.sort(key=lambda e: [r["output"] for r in ROWS].index(e["_response"][0]["content"]))
        for example, row in zip(examples, ROWS, strict=True):
            assert example["_response"] == [{"role": "assistant", "content": row["output"]}], name
            prompt = example["_prompt"][-1]["content"]
            if name == "toy_alpaca":  # LLaMA-Factory joins instruction and input with one newline
                assert prompt == "\n".join(p for p in (row["instruction"], row["input"]) if p)
            else:
                assert prompt == user_turn(row), name
            if name in ("toy_alpaca", "toy_sharegpt", "toy_messages", "toy_parquet"):
                assert (example["_system"] or "") == (row.get("system") or ""), name


def test_a_misnamed_key_or_column_is_caught_where_llamafactory_would_read_nothing(bundle_dir):
    info = json.loads((bundle_dir / "dataset_info.json").read_text())
    written = [formats.WrittenFile("sharegpt", "sharegpt.jsonl", columns=["conversations", "system"],
                                   required_columns=["conversations"]),
               formats.WrittenFile("alpaca", "alpaca.json", columns=["instruction", "input", "output", "system"],
                                   required_columns=["instruction", "input", "output"])]
    good = {k: info[k] for k in ("toy_sharegpt", "toy_alpaca")}
    assert check_dataset_info(good, written) == []
    misspelt = {"toy_sharegpt": {k if k != "formatting" else "formating": v for k, v in info["toy_sharegpt"].items()}}
    unknown = {"toy_sharegpt": {**info["toy_sharegpt"], "formatting": "sharegtp"}}
    missing = {"toy_alpaca": {**info["toy_alpaca"], "columns": {"prompt": "instruction", "response": "answer"}}}
    assert "unknown key 'formating'" in " ".join(check_dataset_info(misspelt, written))
    assert "is not 'alpaca' or 'sharegpt'" in check_dataset_info(unknown, written)[0]
    assert "'answer', which alpaca.json does not have" in check_dataset_info(missing, written)[0]
    # what LLaMA-Factory does with the misspelt key: read the sharegpt file as alpaca, find no valid sample
    (bundle_dir / "dataset_info.json").write_text(json.dumps(misspelt))
    assert not any(lf.valid(e) for e in lf.load_entry(bundle_dir, "toy_sharegpt"))


def test_axolotl_snippet_points_at_the_messages_file(bundle_dir):
    text = (bundle_dir / "axolotl.yaml").read_text()
    [entry] = yaml.safe_load(text)["datasets"]
    assert entry["path"] == "messages.jsonl" and entry["type"] == "chat_template"
    assert entry["field_messages"] == "messages" and entry["roles_to_train"] == ["assistant"]
    assert entry["message_property_mappings"] == {"role": "role", "content": "content"}
    records = [json.loads(line) for line in (bundle_dir / entry["path"]).read_text().splitlines()]
    assert all(m.keys() >= {"role", "content"} for r in records for m in r[entry["field_messages"]])


def test_dataset_info_for_a_subset_of_formats(tmp_path):
    files = formats.write_all(ROWS, [formats.open_writer("prompt-completion", tmp_path)])
    info = dataset_info("toy", files)
    assert info == {"toy_prompt_completion": {"file_name": "prompt_completion.jsonl", "formatting": "alpaca",
                                              "columns": {"prompt": "prompt", "response": "completion"}}}
    assert check_dataset_info(info, files) == []


def test_the_built_in_trainer_reads_the_sharegpt_file(bundle_dir):
    from app.core.training.data import read_export
    from app.core.training.errors import TrainDataError

    fmt, conversations = read_export(bundle_dir / "sharegpt.jsonl")
    assert fmt == "sharegpt" and len(conversations) == len(ROWS)
    assert conversations[2] == [{"role": "system", "content": "Answer with one word."},
                                {"role": "user", "content": "Translate to French.\n\ncat"},
                                {"role": "assistant", "content": "chat"}]
    _, from_messages = read_export(bundle_dir / "messages.jsonl")
    assert conversations == from_messages  # the same conversations whichever file the trainer is given
    bad = bundle_dir / "bad.jsonl"
    bad.write_text(json.dumps({"conversations": [{"from": "human", "value": "Hi"}, {"from": "bot", "value": "Hey"}]})
                   + "\n")
    with pytest.raises(TrainDataError, match=r"line 1: conversations\[1\]: 'from' must be one of human, gpt, system"):
        read_export(bad)


# --- TRL's SFTTrainer data preparation ---------------------------------------------------------
def _sft_prepared(model_dir, data_file, **config):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    args = SFTConfig(output_dir=str(data_file.parent / "sft"), max_length=512, report_to="none", use_cpu=True,
                     bf16=False, dataset_num_proc=None, **config)
    trainer = SFTTrainer(model=model, args=args, processing_class=tokenizer,
                         train_dataset=_load("json", data_files=str(data_file)))
    return trainer.train_dataset, tokenizer


def test_trl_prepares_every_messages_row_with_loss_on_the_answer(bundle_dir, tiny_model_dir):
    prepared, tokenizer = _sft_prepared(tiny_model_dir, bundle_dir / "messages.jsonl", assistant_only_loss=True)
    assert len(prepared) == len(ROWS)
    for got, row in zip(prepared, ROWS, strict=True):
        trained = tokenizer.decode([t for t in got["labels"] if t != -100])
        assert trained == row["output"] + "<end_of_turn>"


def test_trl_prepares_every_prompt_completion_row_with_loss_on_the_completion(bundle_dir, tiny_model_dir):
    prepared, tokenizer = _sft_prepared(tiny_model_dir, bundle_dir / "prompt_completion.jsonl",
                                        completion_only_loss=True)
    assert len(prepared) == len(ROWS)
    for got, row in zip(prepared, ROWS, strict=True):
        trained = tokenizer.decode([t for t in got["labels"] if t != -100])
        assert trained == row["output"] + tokenizer.eos_token
