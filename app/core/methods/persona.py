"""Persona-driven generation (PersonaHub, Chan et al., 2024): personas crossed with kinds of task.

For each persona, drawn without replacement in a seeded order, and each of its
`tasks_per_persona` kinds of task (the `task_types`, or the seed set's tasks shown as an
example of a kind), the model is asked for the task that person would give: a base model in
a completion prompt of worked examples (`prompts/persona_generate.txt`), an instruct model
through the chat API (`prompts/chat_persona_generate.txt`); the engine
(`planned.PlannedGeneration`) answers and filters it like every method. Each candidate
stores its persona and kind of task in `detail`, rejected or not.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from app.core.filters.decontaminate import Checker
from app.core.llm.client import LLMClient
from app.core.methods import prompts
from app.core.methods.candidates import NearDuplicates, StoredCandidate
from app.core.methods.planned import PlannedGeneration
from app.core.params import PersonaParams


@dataclass(frozen=True)
class PlannedTask:
    """One request: the persona, the kind of task, and where it is in the plan."""

    persona: str
    task: str
    index: int

    def prompt(self) -> str:
        return prompts.render("persona_generate", persona=self.persona, task=self.task).rstrip()

    def messages(self, structured: bool) -> list[dict[str, str]]:
        return prompts.messages("chat_persona_generate", persona=self.persona, task=self.task.rstrip("."),
                                format=prompts.load("chat_format_task_json" if structured else "chat_format_task"))

    def detail(self) -> dict[str, Any]:
        """What the candidate stores of where it came from (and what a resumed job skips)."""
        return {"persona": self.persona, "task": self.task}


def seed_task_kind(instruction: str) -> str:
    """A seed task shown as an example of a kind of task."""
    return f"a task of the same kind as this one: {' '.join(instruction.split())}"


def plan(personas: Sequence[str], tasks: Sequence[str], tasks_per_persona: int, seed: int | None,
         exclude: Iterable[str] = ()) -> list[PlannedTask]:
    """Personas (less `exclude`) in a seeded random order, each with its `tasks_per_persona` kinds
    of task, taken in turn from `tasks` (in a seeded order), so every kind comes up evenly."""
    excluded = set(exclude)
    rng = random.Random(seed)
    order = [p for p in personas if p not in excluded]
    rng.shuffle(order)
    kinds = list(tasks)
    rng.shuffle(kinds)
    out, n = [], 0
    for persona in order:
        for _ in range(tasks_per_persona):
            out.append(PlannedTask(persona, kinds[n % len(kinds)], n))
            n += 1
    return out


class PersonaGeneration(PlannedGeneration):
    """One persona job's engine: the plan of `plan()` over the personas and kinds of task."""

    def __init__(
        self,
        params: PersonaParams,
        client: LLMClient,
        personas: Sequence[str],
        tasks: Sequence[str],
        previous: Sequence[StoredCandidate] = (),
        concurrency: int = 8,
        near_duplicates: NearDuplicates | None = None,
        job_key: str = "job",
        pool: Iterable[str] = (),
        known_examples: Iterable[tuple[str, str]] = (),
        decontaminate: Checker | None = None,
        exclude_personas: Iterable[str] = (),
        persona_set_id: int | None = None,
        responder: LLMClient | None = None,
        structured: bool = True,
    ):
        """`pool`: instructions a candidate must be novel against besides this job's (seed tasks,
        a dataset's content); `exclude_personas`: personas not to draw (earlier builds used them)."""
        if not personas:
            raise ValueError("the persona set is empty")
        if not tasks:
            raise ValueError("no kind of task to cross the personas with")
        super().__init__(params, client, plan(personas, tasks, params.tasks_per_persona, params.seed,
                                              exclude_personas),
                         previous, concurrency, near_duplicates, job_key, pool, known_examples, decontaminate,
                         {"persona_set_id": persona_set_id} if persona_set_id is not None else None,
                         responder=responder, structured=structured)
