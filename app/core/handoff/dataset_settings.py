"""What a dataset's new versions go through: the destinations they are delivered to, and the
training settings of the train-on-new-version gate.

**Destinations** are links (`dataset_destinations`) to the owner's destinations; each new
version is delivered to every one (`version_handoff` job), checked first.

**Training** (`datasets.training`, null: none) holds `TrainingSettings`:

* `params`: overrides of the trainer's parameters (`TrainParams`), checked when they are
  set, against the service's defaults, so a bad value is refused then, not at the first
  run;
* `gate`: the tag a run that is not worse moves (`prod` by default) and the tolerance per
  metric (`gate.DEFAULT_TOLERANCE`);
* `eval`: the evaluation tasks, **fixed when the settings are set** and the same for every
  run of the dataset: given tasks (a seed-format file or a list), or by default every
  instance with an output of the recipe's seed sets (human-written, never generated, so
  never trained on). They are frozen in a content-addressed file
  (`<data_dir>/handoff/eval/<sha256>.json`, an Alpaca JSON list) that each run uses both as
  its held-out set (`held_out_file`: the held-out loss) and as its instruction-following
  test (`eval_tasks`: ROUGE-L of greedy answers), so two runs on two versions are scored
  on the same rows. Changing the tasks makes a new file and a new sha256; runs on other
  tasks are never compared (`training_gate`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from sqlalchemy import delete
from sqlmodel import Session, col, select

from app.core import records
from app.core.datasets import tags as ds_tags
from app.core.datasets import versions as ds_versions
from app.core.datasets.errors import DatasetError
from app.core.handoff.gate import DEFAULT_TOLERANCE, METRICS
from app.core.store import id_of
from app.core.training.config import TrainParams
from app.models import Dataset, DatasetDestination, Destination, SeedTask

MAX_EVAL_TASKS = 2000
# parameters the gate sets itself (or that name the data): refused in `params`
RESERVED_PARAMS = {
    "eval_tasks": "the gate's evaluation tasks are `eval_tasks` of the training settings",
    "held_out_file": "the gate holds out its evaluation tasks for the loss",
    "eval_fraction": "the gate measures the loss on its evaluation tasks, not on a split of the version",
    "dataset": "the data is the new version", "dataset_version": "the data is the new version",
    "resume": "set by the service", "model_cache_dir": "set by the service (SPROUT_DATA_DIR)",
}


class SettingsError(DatasetError):
    """Hand-off settings a caller must fix; the message names the field (`training.params.lora_r: ...`)."""


class GateSettings(BaseModel):
    """The tag a new version's run moves when it is not worse, and how much worse is still fine."""

    model_config = ConfigDict(extra="forbid")
    tag: str = Field(default="prod", description="The tag moved to a new version whose run is not worse.")
    tolerance: dict[str, float] = Field(
        default_factory=lambda: dict(DEFAULT_TOLERANCE),
        description="Per metric, how much worse (absolute) still passes: eval_loss_after (lower is better), "
        "rouge_l_after (higher is better).",
    )

    @field_validator("tag")
    @classmethod
    def _tag(cls, value: str) -> str:
        ds_tags.validate_tag(value)
        if value == ds_versions.LATEST_TAG:
            raise ValueError("'latest' moves by itself at each version; the gate needs a tag of its own")
        return value

    @field_validator("tolerance")
    @classmethod
    def _tolerance(cls, value: dict[str, float]) -> dict[str, float]:
        unknown = sorted(set(value) - set(METRICS))
        if unknown:
            raise ValueError(f"unknown metric(s) {', '.join(unknown)}; use {', '.join(METRICS)}")
        if any(t < 0 for t in value.values()):
            raise ValueError("a tolerance cannot be negative")
        return {**DEFAULT_TOLERANCE, **value}


class EvalSet(BaseModel):
    """The fixed evaluation tasks of a dataset's runs."""

    source: str = Field(description="Where the tasks came from: the recipe's seed sets, or a file or list given.")
    tasks: int
    sha256: str = Field(description="sha256 of the tasks (canonical JSON); runs on other tasks are not compared.")
    path: str = Field(description="The frozen file every run reads (Alpaca JSON).")


class TrainingSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    params: dict[str, Any] = Field(default_factory=dict, description="Overrides of the trainer's parameters.")
    gate: GateSettings = Field(default_factory=GateSettings)
    eval: EvalSet


# --- destinations ------------------------------------------------------------------------------
def _same_owner(dataset: Dataset, destination: Destination) -> bool:
    return ds_versions.owner_key(destination.owner) == dataset.owner


def destinations_of(session: Session, dataset: Dataset) -> list[Destination]:
    return list(session.exec(
        select(Destination).join(DatasetDestination, col(DatasetDestination.destination_id) == col(Destination.id))
        .where(DatasetDestination.dataset_id == dataset.id).order_by(col(Destination.id))
    ).all())


def set_destinations(session: Session, dataset: Dataset, destination_ids: Sequence[int]) -> list[Destination]:
    """Deliver each new version of `dataset` to these destinations (the owner's), replacing the
    list; empty: none. Flushed, not committed. Raises `SettingsError` naming the index."""
    wanted = list(dict.fromkeys(destination_ids))
    found = {d.id: d for d in session.exec(select(Destination).where(
        col(Destination.id).in_([i for i in wanted if 1 <= i <= ds_versions.MAX_NUMBER])))}
    for i, ident in enumerate(wanted):
        if ident not in found or not _same_owner(dataset, found[ident]):
            raise SettingsError(f"destination_ids[{i}]: no destination with id {ident}")
    session.execute(delete(DatasetDestination).where(col(DatasetDestination.dataset_id) == dataset.id))
    for ident in wanted:
        session.add(DatasetDestination(dataset_id=id_of(dataset), destination_id=ident))
    session.flush()
    return [found[i] for i in wanted]


# --- training ----------------------------------------------------------------------------------
def training_of(dataset: Dataset) -> TrainingSettings | None:
    return TrainingSettings.model_validate(dataset.training) if dataset.training else None


def check_params(params: Mapping[str, Any], defaults: Mapping[str, Any] | None = None,
                 data_root: Path | None = None) -> dict[str, Any]:
    """The overrides, valid on top of the service's defaults (`TrainParams`); `data_root` (the
    API): a base model must be `default` or lie inside it. Raises `SettingsError`."""
    for key in params:
        if key in RESERVED_PARAMS:
            raise SettingsError(f"training.params.{key}: not settable here: {RESERVED_PARAMS[key]}")
    try:
        TrainParams.model_validate({**(defaults or {}), **params})
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        raise SettingsError(f"training.params.{where}: {err['msg']}") from None
    base = params.get("base_model")
    if data_root is not None and base not in (None, "default") and \
            not Path(str(base)).resolve().is_relative_to(Path(data_root).resolve()):
        raise SettingsError(f"training.params.base_model: must be 'default' or a path inside the service's data "
                            f"directory ({Path(data_root).resolve()})")
    return dict(params)


def check_eval_tasks(tasks: Sequence[Mapping[str, Any]], where: str = "training.eval_tasks") -> list[dict[str, str]]:
    """Tasks as `{instruction, input, output}` with a non-empty instruction and output."""
    if not tasks:
        raise SettingsError(f"{where}: no evaluation task (each needs an instruction and an output)")
    if len(tasks) > MAX_EVAL_TASKS:
        raise SettingsError(f"{where}: at most {MAX_EVAL_TASKS} tasks (every run scores each), got {len(tasks)}")
    out = []
    for i, task in enumerate(tasks):
        row = {k: task.get(k, "") for k in ("instruction", "input", "output")}
        for key, value in row.items():
            if not isinstance(value, str):
                raise SettingsError(f"{where}[{i}].{key}: must be text")
        if not row["instruction"].strip() or not row["output"].strip():
            raise SettingsError(f"{where}[{i}]: needs a non-empty instruction and output")
        out.append(row)
    return out


def tasks_from_seed_sets(session: Session, seed_set_ids: Sequence[int]) -> list[dict[str, str]]:
    """Every instance with an output of the seed sets' tasks, in the recipe's order."""
    out = []
    for ident in seed_set_ids:
        for task in session.exec(select(SeedTask).where(SeedTask.seed_set_id == ident).order_by(col(SeedTask.position))):
            out += [{"instruction": task.instruction, "input": inst.get("input") or "", "output": inst["output"]}
                    for inst in task.instances or [] if str(inst.get("output") or "").strip()]
    return out


def tasks_from_file(path: str | Path) -> list[dict[str, str]]:
    """The instances of a seed-format file (Self-Instruct JSONL, Alpaca JSON, CSV)."""
    from app.core.seeds import SeedFormatError, load_seed_file

    try:
        _, seed_tasks = load_seed_file(path)
    except SeedFormatError as exc:
        raise SettingsError(f"training.eval_tasks: {exc}") from None
    return [{"instruction": t.instruction, "input": inst["input"], "output": inst["output"]}
            for t in seed_tasks for inst in t.instances if inst["output"].strip()]


def freeze_eval_tasks(tasks: Sequence[dict[str, str]], data_dir: Path, source: str) -> EvalSet:
    """Write the tasks once to `<data_dir>/handoff/eval/<sha256>.json` (a file named by its
    content never changes, so a queued run reads what it was queued with)."""
    canonical = json.dumps(list(tasks), sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    digest = hashlib.sha256(canonical.encode("utf-8")).hexdigest()
    path = Path(data_dir) / "handoff" / "eval" / f"{digest}.json"
    if not path.is_file():
        with records.atomic_file(path) as fh:
            json.dump(list(tasks), fh, ensure_ascii=False, indent=2)
            fh.write("\n")
    return EvalSet(source=source, tasks=len(tasks), sha256=digest, path=str(path))


def set_training(session: Session, dataset: Dataset, *, params: Mapping[str, Any], gate: GateSettings | None,
                 data_dir: Path, eval_tasks: Sequence[Mapping[str, Any]] | None = None,
                 eval_source: str | None = None, defaults: Mapping[str, Any] | None = None,
                 data_root: Path | None = None) -> TrainingSettings:
    """Train each new version of `dataset` with `params` and gate `gate.tag` on the result
    (replacing earlier settings). `eval_tasks` None: the recipe's seed sets' instances.
    Flushed, not committed; raises `SettingsError` naming the field."""
    checked = check_params(params, defaults, data_root)
    tasks: Sequence[Mapping[str, Any]]
    if eval_tasks is None:
        seed_set_ids = ds_versions.recipe_of(dataset).seed_set_ids
        tasks = tasks_from_seed_sets(session, seed_set_ids)
        if not tasks:
            raise SettingsError("training.eval_tasks: the recipe's seed sets have no instance with an output to "
                                "evaluate runs on; give evaluation tasks")
        source = f"the instances of seed set(s) {', '.join(map(str, seed_set_ids))}"
    else:
        tasks, source = eval_tasks, eval_source or "given tasks"
    frozen = freeze_eval_tasks(check_eval_tasks(tasks), data_dir, source)
    settings = TrainingSettings(params=checked, gate=gate or GateSettings(), eval=frozen)
    dataset.training = settings.model_dump(mode="json")
    session.add(dataset)
    session.flush()
    return settings


def clear_training(session: Session, dataset: Dataset) -> None:
    dataset.training = None
    session.add(dataset)
    session.flush()


def run_params(settings: TrainingSettings, dataset: Dataset, number: int) -> dict[str, Any]:
    """The parameters of the training job of version `number`: the overrides, the version as
    the data, and the frozen tasks as the held-out set and the instruction-following test."""
    return {**settings.params, "dataset": dataset.name, "dataset_version": number,
            "eval_tasks": settings.eval.path, "held_out_file": settings.eval.path}


def needs_handoff(session: Session, dataset: Dataset) -> bool:
    """Has a new version of `dataset` anything to go through: destinations or training?"""
    linked = session.exec(select(DatasetDestination.id).where(DatasetDestination.dataset_id == dataset.id)).first()
    return linked is not None or bool(dataset.training)


def describe(session: Session, dataset: Dataset) -> dict[str, Any]:
    """The settings as the shells show them."""
    training = training_of(dataset)
    return {"destinations": [{"id": d.id, "name": d.name, "kind": d.kind, "config": d.config}
                             for d in destinations_of(session, dataset)],
            "training": training.model_dump(mode="json") if training else None}
