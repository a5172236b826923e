"""The preflight check: what a trainer would make of every row, before the data leaves.

Trainers fail late and quietly on data: LLaMA-Factory's "Cannot find valid samples", a
loss mask that covers nothing (the model trains on no token and the loss looks fine), a
row silently cut at `max_length`. Each row is rendered and tokenized exactly as Sprout's
trainer would (`app.core.training.masks.tokenize_for_training`, the chat template of the
target tokenizer: Gemma's by default) and checked:

* `rows`: the source has rows at all;
* `empty_instruction`, `empty_output`: no blank prompt, no blank answer;
* `renders`: the row is a valid conversation and the chat template renders it;
* `assistant_mask`: at least one token of the answer carries loss; for a multi-turn row
  (`turns`), every assistant turn does, and no user token does (a template without
  `{% generation %}` markers trains the last answer only: a warning);
* `turn_terminator`: the token the chat template ends the assistant turn with
  (`<end_of_turn>` for Gemma) carries loss under TRL's mask and under axolotl's rules with
  the bundle's `axolotl.yaml` settings (`axolotl_rules`), or the model never learns to stop;
* `max_length`: the row fits in `max_length` tokens; a longer one is counted and listed,
  and fails the check unless truncation is allowed (a row whose answer lies wholly past
  the limit always fails: the trainer drops it);
* `dataset_info`: `dataset_info.json` names only columns the files have.

A failing report names its rows (position and id) and reasons; a delivery is blocked by it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from app.core import conversation as turns_model
from app.core import export
from app.core.handoff.axolotl_rules import axolotl_labels, turn_terminator
from app.core.handoff.formats import WrittenFile
from app.core.handoff.trainer_configs import check_dataset_info

CHECKS = ("rows", "empty_instruction", "empty_output", "renders", "assistant_mask", "turn_terminator", "max_length",
          "dataset_info")


@dataclass(frozen=True)
class PreflightOptions:
    max_length: int = 1024
    allow_truncated: bool = False
    max_listed: int = 50  # problems listed per check (all are counted)


@dataclass
class Problem:
    check: str
    reason: str
    index: int | None = None  # position of the row in the source
    id: Any = None  # the row's id

    def as_dict(self) -> dict[str, Any]:
        return {"check": self.check, "index": self.index, "id": self.id, "reason": self.reason}

    def __str__(self) -> str:
        where = f"row {self.index} (id {self.id})" if self.index is not None else "bundle"
        return f"{self.check}: {where}: {self.reason}"


@dataclass
class CheckResult:
    name: str
    ok: bool
    failures: int = 0
    warnings: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "ok": self.ok, "failures": self.failures, "warnings": self.warnings}


@dataclass
class PreflightReport:
    ok: bool
    rows: int
    checks: list[CheckResult]
    problems: list[Problem]
    template: str
    mask_mode: str
    max_length: int
    truncated: int = 0
    longest_tokens: int = 0
    trained_tokens: int = 0
    listed_per_check: int = 50
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok, "rows": self.rows, "template": self.template, "mask_mode": self.mask_mode,
            "max_length": self.max_length, "truncated": self.truncated, "longest_tokens": self.longest_tokens,
            "trained_tokens": self.trained_tokens, "checks": [c.as_dict() for c in self.checks],
            "problems": [p.as_dict() for p in self.problems], "listed_per_check": self.listed_per_check,
        }

    def failed_checks(self) -> list[str]:
        return [c.name for c in self.checks if not c.ok]

    def summary(self) -> str:
        """One line: passed, or which checks failed and how many rows each."""
        if self.ok:
            note = f", {self.truncated} truncated (allowed)" if self.truncated else ""
            return f"preflight passed: {self.rows} rows, longest {self.longest_tokens} tokens of {self.max_length}{note}"
        failed = ", ".join(f"{c.name} ({c.failures})" for c in self.checks if not c.ok)
        return f"preflight failed: {failed}"


class Preflight:
    """Checks rows one at a time (`add`), so it runs in the same pass as the writers."""

    def __init__(self, tokenizer: Any, options: PreflightOptions = PreflightOptions(), template: str = ""):
        from app.core.training.config import TrainParams
        from app.core.training.trainer import mask_mode

        self.tokenizer = tokenizer
        self.options = options
        self.template = template or getattr(tokenizer, "name_or_path", "") or "tokenizer"
        self.mode = mask_mode(tokenizer, TrainParams())  # response-only loss, as the trainer's default
        self.terminator = turn_terminator(tokenizer)  # what axolotl.yaml's eot_tokens names
        self.terminator_id = (tokenizer.convert_tokens_to_ids(self.terminator)
                              if self.terminator is not None else None)
        self.rows = 0
        self.failures = dict.fromkeys(CHECKS, 0)
        self.warnings = dict.fromkeys(CHECKS, 0)
        self.problems: list[Problem] = []
        self.truncated = self.longest = self.trained = 0

    def _problem(self, check: str, reason: str, index: int | None = None, row_id: Any = None,
                 warning: bool = False) -> None:
        counts = self.warnings if warning else self.failures
        counts[check] += 1
        if counts[check] <= self.options.max_listed:
            self.problems.append(Problem(check, ("warning: " if warning else "") + reason, index, row_id))

    def add(self, row: dict[str, Any]) -> None:
        from app.core.training.data import row_to_conversation
        from app.core.training.masks import tokenize_for_training, trained_tokens

        index, row_id = self.rows, row.get("id")
        self.rows += 1
        if not str(row.get("instruction") or "").strip():
            self._problem("empty_instruction", "the instruction (the user turn) is empty", index, row_id)
            return
        if not str(row.get("output") or "").strip():
            self._problem("empty_output", "the output (the assistant turn) is empty", index, row_id)
            return
        try:
            turns_model.check_turns(row.get("turns"))
            conversation = row_to_conversation(export.to_record(row, "messages"))
            ids, labels = tokenize_for_training(self.tokenizer, conversation, self.mode)
        except Exception as exc:  # a bad row or a template that cannot render it: either way, reported
            self._problem("renders", f"cannot be rendered with the chat template ({type(exc).__name__}: {exc})",
                          index, row_id)
            return
        trained = trained_tokens(labels)
        if trained == 0:
            self._problem("assistant_mask", "no token of the answer carries loss: the chat template's assistant "
                          "mask is empty for this row", index, row_id)
            return
        if self.terminator is not None and self.terminator_id is not None:  # (the id comes with the token)
            self._check_terminator(conversation, labels, index, row_id, self.terminator)
        if turns_model.turns_of(row):
            self._check_turns_mask(conversation, ids, labels, index, row_id)
        self.longest = max(self.longest, len(ids))
        limit = self.options.max_length
        kept = trained_tokens(labels, limit)
        self.trained += kept
        if len(ids) > limit:
            self.truncated += 1
            if kept == 0:
                self._problem("max_length", f"{len(ids)} tokens: cut at max_length {limit}, no answer token is "
                              "left and the trainer drops the row", index, row_id)
            else:
                self._problem("max_length", f"{len(ids)} tokens, over max_length {limit}: {trained - kept} of its "
                              f"{trained} answer tokens would be cut", index, row_id,
                              warning=self.options.allow_truncated)

    def _check_terminator(self, conversation: Any, labels: list[int], index: int, row_id: Any, terminator: str) -> None:
        """The turn terminator carries loss for TRL (this mask) and for axolotl (its rules)."""
        missing = []
        if self.terminator_id not in [t for t in labels if t != -100]:
            missing.append("TRL's mask")
        try:
            _, axolotl = axolotl_labels(self.tokenizer, conversation, [terminator])
        except ValueError as exc:
            missing.append(f"axolotl's rules ({exc})")
        else:
            if self.terminator_id not in axolotl:
                missing.append("axolotl's rules (axolotl.yaml)")
        if missing:
            self._problem("turn_terminator", f"the turn terminator {self.terminator} carries no loss under "
                          + " nor ".join(missing) + ": the model would not learn to end its answer", index, row_id)

    def _check_turns_mask(self, conversation: list[dict[str, str]], ids: list[int], labels: list[int],
                          index: int, row_id: Any) -> None:
        """A conversation: each assistant turn's text carries loss and no user turn's does."""
        from app.core.training.masks import turn_coverage

        if self.mode != "assistant":
            self._problem("assistant_mask", f"{self.mode} loss mask: of this row's {len(conversation) // 2} answers, "
                          "only the last carries loss (the chat template has no {% generation %} markers)",
                          index, row_id, warning=True)
            return
        for turn, trained in turn_coverage(self.tokenizer, conversation, ids, labels):
            role = conversation[turn]["role"]
            if role == "assistant" and not trained:
                self._problem("assistant_mask", f"message {turn} (an answer) carries no loss", index, row_id)
            elif role != "assistant" and trained:
                self._problem("assistant_mask", f"message {turn} ({role}) carries loss", index, row_id)

    def finish(self, files: Iterable[WrittenFile] = (), dataset_info: dict[str, Any] | None = None) -> PreflightReport:
        if self.rows == 0:
            self._problem("rows", "the source has no rows")
        if dataset_info is not None:
            for problem in check_dataset_info(dataset_info, list(files)):
                self._problem("dataset_info", problem)
        checks = [CheckResult(name, self.failures[name] == 0, self.failures[name], self.warnings[name])
                  for name in CHECKS]
        return PreflightReport(
            ok=all(c.ok for c in checks), rows=self.rows, checks=checks, problems=self.problems,
            template=self.template, mask_mode=self.mode, max_length=self.options.max_length,
            truncated=self.truncated, longest_tokens=self.longest, trained_tokens=self.trained,
            listed_per_check=self.options.max_listed,
        )


def check_rows(rows: Iterable[dict[str, Any]], tokenizer: Any, options: PreflightOptions = PreflightOptions(),
               template: str = "") -> PreflightReport:
    """The row checks alone (no files): `sprout handoff check`."""
    preflight = Preflight(tokenizer, options, template)
    for row in rows:
        preflight.add(row)
    return preflight.finish()
