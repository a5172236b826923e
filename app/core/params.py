"""The methods' parameters, with the papers' values as defaults.

One model per method. It is both the service-wide default (a nested setting, see
`app.settings`) and the validated parameters of one job (the API and the CLI build it
from user input, so a typo or an out-of-range value is refused before a job exists).
Sources: Self-Instruct (Wang et al., 2022) and its reference code; see
`ARCHITECTURE.md` for where the project departs from the reference code and why.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

# The paper's word blacklist (Self-Instruct, section 2.3 and the reference code).
PAPER_BLACKLIST = [
    "image", "images", "graph", "graphs", "picture", "pictures", "file", "files",
    "map", "maps", "draw", "plot", "go to",
]
# Stanford Alpaca's additions, offered as an option.
ALPACA_EXTRA_BLACKLIST = ["video", "audio", "music", "flowchart", "diagram"]


DecontaminateField = Literal["prompt", "output"]
DECONTAMINATE_FIELDS: tuple[DecontaminateField, ...] = ("prompt", "output")


class BuildOrigin(BaseModel):
    """Which dataset build a generation job is a step of (set by the build on its step job).

    A step starts from every seed set of the recipe and is novel against the dataset's whole
    current content (`app.core.jobs.generation.dataset_inputs`), and is checked against its
    frozen evaluation tasks (`app.core.jobs.decontamination`)."""

    model_config = ConfigDict(extra="forbid")

    dataset_id: int = Field(ge=1, description="The dataset the build adds to.")
    build_job_id: int = Field(ge=1, description="The dataset_build job that made this step.")
    step: int = Field(ge=1, description="Which step of the recipe (1 is the first).")
    seed_set_ids: list[int] = Field(default_factory=list, description="The recipe's seed sets.")


class BuildStepParams(BaseModel):
    """What a generation job carries when it is one step of a dataset build.

    `build` is the service's to set, never a caller's or a setting's: its schema says
    `readOnly` (JSON Schema's word for it), which the jobs layer, the new-job form and the
    settings reference read (`app.core.jobs.registry.server_set`)."""

    build: BuildOrigin | None = Field(
        default=None,
        description="Set by a dataset build on its step jobs (the build, its dataset and the step); "
        "a job asked for directly has none.",
        json_schema_extra={"readOnly": True},
    )


class DecontaminationParams(BaseModel):
    """Benchmark decontamination, shared by the generation methods (`app.core.filters.decontaminate`)."""

    decontaminate_against: list[int] = Field(
        default_factory=list, max_length=50,
        description="Benchmark set ids: a candidate that reproduces one of their items is rejected as 'contaminated'.",
    )
    decontaminate_n: int = Field(default=8, ge=1, le=64, description="Word n-gram length of decontamination (open-instruct: 8).")
    decontaminate_threshold: float = Field(
        default=0.5, ge=0, lt=1,
        description="Contaminated when the n-grams shared with one benchmark item cover more than this fraction of its tokens.",
    )
    decontaminate_fields: list[Literal["prompt", "output"]] = Field(
        default_factory=lambda: list(DECONTAMINATE_FIELDS), min_length=1,
        description="Compared fields: 'prompt' (instruction + input) and/or 'output', each against the benchmark's same field.",
    )
    decontaminate_strict: bool = Field(
        default=False, description="Reject on any shared n-gram (open-r1's rule) instead of the coverage threshold.",
    )
    decontaminate_eval_tasks: bool = Field(
        default=True,
        description="Also reject a candidate that reproduces an evaluation task the trainer scores: the trainer's "
        "default tasks (seeds/default.jsonl unless the train settings name others) and, for a dataset build's "
        "step, the dataset's own fixed evaluation tasks. Off: only the benchmark sets are checked.",
    )


class BudgetParams(BaseModel):
    """A job's token budget (`app.core.budget`), shared by the generation methods."""

    max_total_tokens: int | None = Field(
        default=None, ge=1, le=10**12,
        description="Stop the job at the next safe point once it has used this many tokens (prompt + completion); "
        "what it accepted is kept and result.stopped says why.",
    )
    price_per_million_tokens: float | None = Field(
        default=None, ge=0, le=1e6, description="Price of a million tokens (prompt + completion), for costs and max_cost: "
        "the generator's, and every role's that has none of its own (default: SPROUT_LLM_PRICE_PER_MILLION_TOKENS).",
    )
    responder_price_per_million_tokens: float | None = Field(
        default=None, ge=0, le=1e6, description="The responder's price of a million tokens (default: "
        "SPROUT_RESPONDER_PRICE_PER_MILLION_TOKENS, else the generator's); 0 for a model that costs nothing.",
    )
    judge_price_per_million_tokens: float | None = Field(
        default=None, ge=0, le=1e6, description="The judge's price of a million tokens (Evol-Instruct's elimination judge, "
        "score_with_judge; default: SPROUT_JUDGE_PRICE_PER_MILLION_TOKENS, else the generator's).",
    )
    price_per_gpu_hour: float | None = Field(
        default=None, ge=0, le=1e6,
        description="Price of one GPU for an hour (instead of a price per token): a job costs its wall time on the "
        "model servers x gpus x this; an estimate converts tokens to hours at the tokens/s it measured.",
    )
    gpus: int = Field(default=1, ge=1, le=4096, description="GPUs behind the job's model servers, all together "
                      "(with price_per_gpu_hour).")
    max_cost: float | None = Field(
        default=None, gt=0, le=1e9,
        description="Stop the job once its cost reaches this (needs price_per_million_tokens or price_per_gpu_hour).",
    )

    @model_validator(mode="after")
    def _priced(self) -> BudgetParams:
        per_token = [name for name in ("price_per_million_tokens", "responder_price_per_million_tokens",
                                       "judge_price_per_million_tokens") if getattr(self, name) is not None]
        if per_token and self.price_per_gpu_hour is not None:
            raise ValueError(f"set {per_token[0]} or price_per_gpu_hour, not both")
        if self.max_cost is not None and not per_token and self.price_per_gpu_hour is None:
            raise ValueError("max_cost needs price_per_million_tokens or price_per_gpu_hour (or a role's price per million tokens)")
        return self


JudgeAspect = Literal["quality", "complexity"]
JUDGE_ASPECTS: tuple[JudgeAspect, ...] = ("quality", "complexity")


class JudgeStepParams(BaseModel):
    """The LLM judge as the last step of a generation job (`app.core.scoring`), shared by the methods."""

    score_with_judge: bool = Field(
        default=False,
        description="Once generated, score the job's curated examples with the LLM judge (SPROUT_JUDGE_*): a 1-6 "
        "quality and complexity score per example, stored with the judge's name.",
    )
    score_aspects: list[Literal["quality", "complexity"]] = Field(
        default_factory=lambda: list(JUDGE_ASPECTS), min_length=1, max_length=2,
        description="What the judge scores: quality (the whole example) and/or complexity (the instruction).",
    )

    @model_validator(mode="after")
    def _distinct_aspects(self) -> JudgeStepParams:
        if len(set(self.score_aspects)) != len(self.score_aspects):
            raise ValueError("score_aspects: each aspect once")
        return self


class RoleParams(BaseModel):
    """Which model serves each role of a generation job. The generator (new instructions,
    evolutions) is the job's model servers; the responder (classification, instances,
    responses) is the generator unless set here, so one model can generate and another
    answer. A dataset recipe step sets them like any other parameter."""

    dialect: Literal["auto", "completions", "chat"] | None = Field(
        default=None, description="The generator's dialect (None: the service's `SPROUT_LLM_DIALECT`).",
    )
    responder_base_urls: list[str] = Field(
        default_factory=list, max_length=16,
        description="The responder's OpenAI-compatible endpoints (empty: the generator's, or the embedded "
        "model named by `responder_model`).",
    )
    responder_model: str | None = Field(
        default=None, max_length=200,
        description="The responder's model: a model id on its endpoints, or an embedded model "
        "(`gemma-3-270m`, `smollm2-135m-instruct`) started for the job when no endpoint is given.",
    )
    responder_dialect: Literal["auto", "completions", "chat"] | None = Field(
        default=None, description="The responder's dialect (None: the generator's).",
    )


class SelfInstructParams(DecontaminationParams, BudgetParams, JudgeStepParams, RoleParams, BuildStepParams):
    """Parameters of one Self-Instruct job (defaults: the paper's)."""

    model_config = ConfigDict(extra="forbid")

    target: int = Field(
        default=100, ge=1, le=1_000_000,
        description="Stop when this many machine instructions are curated (accepted, with instances).",
    )
    shards: int = Field(
        default=0, ge=0, le=256,
        description="Requesters that send the job's model requests in parallel (worker processes under Celery); "
        "one decider keeps the novelty and near-duplicate guarantee over all of them (`app/core/jobs/shards.py`). "
        "0: the job's own worker sends them.",
    )
    # 1. instruction generation
    prompt_instructions: int = Field(
        default=8, ge=2, le=32, description="In-context instructions per generation prompt."
    )
    prompt_machine_instructions: int = Field(
        default=2, ge=0, le=32,
        description="How many of them come from the machine pool (the rest are human seeds).",
    )
    temperature: float = Field(default=0.7, ge=0, le=2, description="Sampling temperature of instruction generation.")
    top_p: float = Field(default=0.5, gt=0, le=1, description="Nucleus sampling of instruction generation.")
    presence_penalty: float = Field(default=2.0, ge=-2, le=2, description="Presence penalty of instruction generation (keeps lists varied).")
    frequency_penalty: float = Field(default=0.0, ge=-2, le=2, description="Frequency penalty of instruction generation.")
    max_tokens: int = Field(default=1024, ge=16, le=32768, description="Token limit of a generation request; a response that hits it is dropped.")
    stop_at_item: int = Field(
        default=16, ge=3, le=100, description="Stop generating at this item number of the list."
    )
    stop_on_blank_line: bool = Field(
        default=True,
        description="Also stop at a blank line: a small base model rambles after its list.",
    )
    # 2. filters
    min_words: int = Field(default=4, ge=1, description="Fewer words than this: rejected (paper: more than 3).")
    max_words: int = Field(default=150, ge=1, description="More words than this: rejected.")
    blacklist: list[str] = Field(
        default_factory=lambda: list(PAPER_BLACKLIST),
        description="Whole words (case-insensitive) that reject an instruction; Alpaca adds video, audio, music, flowchart, diagram.",
    )
    rouge_l_threshold: float = Field(
        default=0.7, gt=0, le=1, description="Reject when the max ROUGE-L F vs the pool is above this."
    )
    similar_top_k: int = Field(default=10, ge=0, le=100, description="Most similar pool entries stored.")
    mean_similarity_sample: int = Field(
        default=1000, ge=0, le=100_000,
        description="Pool entries sampled to estimate an accepted instruction's mean ROUGE-L (0: off).",
    )
    # 3. classification check
    classify_max_tokens: int = Field(default=3, ge=1, le=64, description="Token limit of the 'Is it classification?' answer (temperature 0).")
    # 4-5. instances
    max_instances: int = Field(default=5, ge=1, le=20, description="Instances kept per task.")
    instance_temperature: float = Field(default=0.0, ge=0, le=2, description="Temperature of instance generation.")
    instance_max_tokens: int = Field(default=350, ge=16, le=8192, description="Token limit of an instance-generation request.")
    # near-duplicates (MinHash LSH over instruction + input + output)
    near_duplicate_threshold: float = Field(
        default=0.9, ge=0, le=1,
        description="Reject an instance whose word-shingle Jaccard with a kept example is at least this (0: off).",
    )
    near_duplicate_num_perm: int = Field(default=128, ge=16, le=1024, description="MinHash permutations.")
    dedup_namespace: str | None = Field(
        default=None, max_length=200,
        description="Name of a near-duplicate index shared with other jobs (default: this job's own).",
    )
    # reproducibility
    seed: int | None = Field(default=None, description="Seeds prompt sampling and each request.")

    @model_validator(mode="after")
    def _check(self) -> SelfInstructParams:
        if self.prompt_machine_instructions >= self.prompt_instructions:
            raise ValueError("prompt_machine_instructions must be smaller than prompt_instructions")
        if self.min_words > self.max_words:
            raise ValueError("min_words must not exceed max_words")
        if self.stop_at_item <= self.prompt_instructions + 1:
            raise ValueError("stop_at_item must leave room for at least one new item")
        if self.shards and (self.responder_base_urls or self.responder_model or self.responder_dialect):
            # the requesters run in other processes, each with the generator's client only
            raise ValueError("shards: a sharded job answers with its generator; leave responder_base_urls, "
                             "responder_model and responder_dialect unset, or shards at 0")
        return self


# Evol-Instruct's operations: five in-depth rewrites and the in-breadth one (WizardLM, §3).
EVOL_OPERATIONS = (
    "add_constraints",
    "deepening",
    "concretizing",
    "increased_reasoning_steps",
    "complicate_input",
    "in_breadth",
)


class EvolInstructParams(DecontaminationParams, BudgetParams, JudgeStepParams, RoleParams, BuildStepParams):
    """Parameters of one Evol-Instruct job (defaults: the paper's, else the reference code's).

    Sampling values follow the reference code (temperature 1, top_p 0.95); the token
    limits are Sprout's (the reference asks for 2048 tokens, far more than a rewrite that
    may add only 10 to 20 words needs).
    """

    model_config = ConfigDict(extra="forbid")

    rounds: int = Field(default=4, ge=1, le=20, description="Evolution rounds (the paper: 4).")
    operations: dict[str, float] = Field(
        default_factory=lambda: {op: 1.0 for op in EVOL_OPERATIONS},
        description="Operation name -> weight; one operation is drawn by weight per evolution. "
        "Leave one out (or weight it 0) to never run it.",
    )
    max_pool: int | None = Field(
        default=None, ge=1, le=1_000_000,
        description="Evolve only the first N instructions of the source (None: all of them).",
    )
    # evolution (rewrite) requests
    temperature: float = Field(default=1.0, ge=0, le=2, description="Sampling temperature of a rewrite (reference code: 1).")
    top_p: float = Field(default=0.95, gt=0, le=1, description="Nucleus sampling of a rewrite (reference code: 0.95).")
    max_tokens: int = Field(
        default=512, ge=1, le=8192,
        description="Token limit of a rewrite; a rewrite that hits it fails as 'truncated_evolution'.",
    )
    # response requests
    response_temperature: float = Field(default=1.0, ge=0, le=2, description="Sampling temperature of a response.")
    response_top_p: float = Field(default=0.95, gt=0, le=1, description="Nucleus sampling of a response.")
    response_max_tokens: int = Field(
        default=1024, ge=4, le=32768,
        description="Token limit of a response; a response that hits it fails as 'truncated_response'.",
    )
    chat_max_tokens: int = Field(
        default=2048, ge=16, le=32768,
        description="Token limit of a rewrite and of a response on the chat API (WizardLM's code: 2048; "
        "an instruct model answers in its own turn and stops by itself).",
    )
    # elimination
    judge_max_tokens: int = Field(default=4, ge=1, le=64, description="Token limit of the judge's Equal / Not Equal answer (temperature 0).")
    judge_unparseable: Literal["keep", "reject"] = Field(
        default="keep",
        description="What a judge answer other than Equal / Not Equal does: keep the evolution "
        "(rule 1 needs a positive 'Equal') or reject it as 'judge_unparseable'.",
    )
    max_parent_rouge_l: float = Field(
        default=0.95, gt=0, le=1,
        description="Rule 1 without the judge: an evolution whose ROUGE-L F against its parent is above this adds "
        "no information (0.95: one word changed in 20 passes to the judge; a rewrite that keeps its parent whole "
        "and adds 10 words stays below up to a 95-word parent).",
    )
    sorry_max_words: int = Field(
        default=80, ge=1, le=10_000, description="Rule 2: a response containing 'sorry' with fewer words than this fails."
    )
    rouge_l_threshold: float = Field(
        default=0.7, gt=0, le=1,
        description="Reject when the max ROUGE-L F against the pool, less the candidate's own ancestors, is above this.",
    )
    similar_top_k: int = Field(default=10, ge=0, le=100, description="Most similar pool entries stored.")
    mean_similarity_sample: int = Field(
        default=1000, ge=0, le=100_000,
        description="Pool entries sampled to estimate an accepted instruction's mean ROUGE-L (0: off).",
    )
    # near-duplicates (MinHash LSH over instruction + response), as in Self-Instruct
    near_duplicate_threshold: float = Field(
        default=0.9, ge=0, le=1,
        description="Reject an evolved example whose word-shingle Jaccard with a kept example is at least this (0: off).",
    )
    near_duplicate_num_perm: int = Field(default=128, ge=16, le=1024, description="MinHash permutations.")
    dedup_namespace: str | None = Field(
        default=None, max_length=200,
        description="Name of a near-duplicate index shared with other jobs (default: this job's own).",
    )
    # reproducibility
    seed: int | None = Field(default=None, description="Seeds operation choice and each request.")

    @model_validator(mode="after")
    def _check(self) -> EvolInstructParams:
        unknown = sorted(set(self.operations) - set(EVOL_OPERATIONS))
        if unknown:
            raise ValueError(f"unknown operation(s) {', '.join(unknown)}; known: {', '.join(EVOL_OPERATIONS)}")
        if any(w < 0 for w in self.operations.values()):
            raise ValueError("operation weights must not be negative")
        if not any(w > 0 for w in self.operations.values()):
            raise ValueError("at least one operation needs a positive weight")
        return self


# Persona-driven generation's default task types (PersonaHub's instruction, math, knowledge
# and tool-use prompts, reduced to what one short prompt can ask for)
PERSONA_TASK_TYPES = (
    "a question they would ask an assistant",
    "a request for practical advice",
    "a short writing task",
    "a math word problem from their daily work",
    "a request to explain a concept they need",
    "a planning or organising task",
)


class PoolFilterParams(BaseModel):
    """The novelty and near-duplicate filters of the request-per-candidate methods (persona, topic
    tree, Magpie), declared once; Self-Instruct and Evol-Instruct word theirs for their own rows."""

    rouge_l_threshold: float = Field(default=0.7, gt=0, le=1,
                                     description="Reject when the max ROUGE-L F vs the pool is above this.")
    similar_top_k: int = Field(default=10, ge=0, le=100, description="Most similar pool entries stored.")
    mean_similarity_sample: int = Field(default=1000, ge=0, le=100_000,
                                        description="Pool entries sampled to estimate the mean ROUGE-L (0: off).")
    sorry_max_words: int = Field(default=80, ge=1, le=10_000,
                                 description="An answer containing 'sorry' with fewer words than this fails.")
    near_duplicate_threshold: float = Field(
        default=0.9, ge=0, le=1,
        description="Reject an example (a whole conversation for Magpie) whose word-shingle Jaccard with a kept one is at least this (0: off).")
    near_duplicate_num_perm: int = Field(default=128, ge=16, le=1024, description="MinHash permutations.")
    dedup_namespace: str | None = Field(default=None, max_length=200,
                                        description="Name of a near-duplicate index shared with other jobs.")



class PlannedRequestParams(PoolFilterParams, RoleParams):
    """What the planned methods (persona, topic_tree) share: the roles and dialects (a base
    model through completions, an instruct model through chat), the decoding of a task and of
    its answer, and the filters every candidate goes through (Self-Instruct's rules and
    novelty, Evol-Instruct's answer rules, near-duplicates)."""

    temperature: float = Field(default=1.0, ge=0, le=2, description="Sampling temperature of a task.")
    top_p: float = Field(default=0.95, gt=0, le=1, description="Nucleus sampling of a task.")
    max_tokens: int = Field(default=200, ge=8, le=8192, description="Token limit of a task; one that hits it fails "
                            "as 'truncated_instruction'.")
    # response requests
    response_temperature: float = Field(default=0.7, ge=0, le=2, description="Sampling temperature of an answer.")
    response_top_p: float = Field(default=0.95, gt=0, le=1, description="Nucleus sampling of an answer.")
    response_max_tokens: int = Field(default=768, ge=4, le=32768, description="Token limit of an answer; one that "
                                     "hits it fails as 'truncated_response'.")
    # filters (Self-Instruct's rules and novelty, Evol-Instruct's answer rules)
    min_words: int = Field(default=4, ge=1, description="Fewer words than this: rejected.")
    max_words: int = Field(default=150, ge=1, description="More words than this: rejected.")
    blacklist: list[str] = Field(default_factory=lambda: list(PAPER_BLACKLIST),
                                 description="Whole words (case-insensitive) that reject a task.")


class PersonaParams(DecontaminationParams, BudgetParams, JudgeStepParams, PlannedRequestParams, BuildStepParams):
    """Parameters of one persona-driven generation job (PersonaHub, Chan et al., 2024; Tulu 3's persona data).

    Each persona of the set is crossed with task types (or with the seed set's tasks as
    examples of a kind of task): the model writes the task that person would give, then
    answers it. Personas are drawn without replacement (seeded order), and in a dataset's
    builds the personas earlier builds used are left out while unused ones remain."""

    model_config = ConfigDict(extra="forbid")

    target: int = Field(default=100, ge=1, le=1_000_000, description="Stop when this many examples are curated.")
    persona_set_id: int | None = Field(
        default=None, ge=1, le=2**31 - 1,
        description="The persona set to draw from (POST /api/v1/persona-sets); none: the set shipped in seeds/.",
    )
    task_types: list[str] = Field(
        default_factory=lambda: list(PERSONA_TASK_TYPES), min_length=1, max_length=100,
        description="Kinds of task crossed with the personas (ignored with cross_with_seed_tasks).",
    )
    cross_with_seed_tasks: bool = Field(
        default=False,
        description="Cross the personas with the job's seed tasks (each shown as an example of a kind of task) "
        "instead of task_types; needs a seed set.",
    )
    tasks_per_persona: int = Field(default=1, ge=1, le=50, description="Tasks written as each persona.")
    fresh_personas_across_builds: bool = Field(
        default=True,
        description="As a dataset build's step: leave out the personas the dataset's earlier builds used "
        "(sampling without replacement across builds) while unused ones remain.",
    )
    seed: int | None = Field(default=None, description="Seeds the persona order and each request.")

    @model_validator(mode="after")
    def _check(self) -> PersonaParams:
        if self.min_words > self.max_words:
            raise ValueError("min_words must not exceed max_words")
        if any(not t.strip() or len(t) > 500 for t in self.task_types):
            raise ValueError("task_types: each a non-empty text of at most 500 characters")
        return self


class TopicTreeParams(DecontaminationParams, BudgetParams, JudgeStepParams, PlannedRequestParams, BuildStepParams):
    """Parameters of one topic-tree job (Kiln's synthetic-data UI: topics, then data per topic).

    Either a stored tree (`topic_tree_id`) or a root description (`root`) that the job grows
    into a tree first (`depth` levels, `breadth` subtopics per node), stores, and then uses;
    tasks are written for each leaf in turn (`tasks_per_leaf` each)."""

    model_config = ConfigDict(extra="forbid")

    target: int = Field(default=100, ge=1, le=1_000_000, description="Stop when this many examples are curated.")
    topic_tree_id: int | None = Field(default=None, ge=1, le=2**31 - 1,
                                      description="A stored tree (POST /api/v1/topic-trees) to write tasks for.")
    root: str | None = Field(default=None, min_length=1, max_length=300,
                             description="A root description to grow a new tree from (instead of topic_tree_id).")
    depth: int = Field(default=2, ge=1, le=5, description="Levels grown below the root.")
    breadth: int = Field(default=4, ge=1, le=20, description="Subtopics asked for per node.")
    tasks_per_leaf: int = Field(default=3, ge=1, le=100, description="Tasks written for each leaf.")
    tree_temperature: float = Field(default=0.7, ge=0, le=2, description="Sampling temperature of the subtopics.")
    seed: int | None = Field(default=None, description="Seeds each request.")

    @model_validator(mode="after")
    def _check(self) -> TopicTreeParams:
        if (self.topic_tree_id is None) == (self.root is None or not self.root.strip()):
            raise ValueError("give exactly one of topic_tree_id (a stored tree) or root (a description to grow)")
        if self.min_words > self.max_words:
            raise ValueError("min_words must not exceed max_words")
        return self


class MagpieParams(DecontaminationParams, BudgetParams, JudgeStepParams, PoolFilterParams, RoleParams, BuildStepParams):
    """Parameters of one Magpie job (Xu et al., 2024; distilabel's `MagpieGenerator`).

    The model that answers (the responder's; the job's model servers unless a responder is
    set) writes each query from its own chat template's pre-query text, sent raw through
    the completions endpoint, and answers it through the chat API. Query sampling is
    Magpie's (temperature 1, top_p 1); answers are greedy by default, as magpie-align's
    response script. No seed tasks are needed: a seed set, or a dataset's content in a
    build, is only what the queries must be novel against."""

    model_config = ConfigDict(extra="forbid")

    target: int = Field(default=100, ge=1, le=1_000_000, description="Stop when this many conversations are curated.")
    max_candidates: int | None = Field(
        default=None, ge=1, le=10_000_000,
        description="Stop after this many decided candidates even short of the target (default: 20 x target).",
    )
    n_turns: int = Field(default=1, ge=1, le=10, description="User-assistant exchanges per conversation.")
    template: Literal["auto", "chatml", "llama3", "gemma", "qwen2", "qwen2.5", "qwen3", "smollm2"] = Field(
        default="auto",
        description="The responder model's chat template family; auto: from the server's template text "
        "(llama.cpp /props), else from the model id (Llama 3, Gemma, Qwen, SmolLM2).",
    )
    pre_query_template: str | None = Field(
        default=None, min_length=1, max_length=4000,
        description="The pre-query text itself (instead of template), e.g. '<|im_start|>user\\n'; later turns "
        "render in its family's format when it ends with a ChatML, Llama 3 or Gemma user prefix.",
    )
    end_of_turn: list[str] = Field(
        default_factory=list, max_length=8,
        description="Strings that end a query (default: the template's end-of-turn tokens).",
    )
    language: Literal["en", "fr", "es", "de", "it", "pt", "nl", "any"] = Field(
        default="en", description="Reject queries in another language (a script and function-word heuristic); "
        "any: no check.",
    )
    temperature: float = Field(default=1.0, ge=0, le=2, description="Sampling temperature of a query (Magpie: 1).")
    top_p: float = Field(default=1.0, gt=0, le=1, description="Nucleus sampling of a query (Magpie: 1).")
    max_tokens: int = Field(default=256, ge=8, le=8192,
                            description="Token limit of a query; one that hits it fails as 'truncated_query'.")
    response_temperature: float = Field(default=0.0, ge=0, le=2, description="Sampling temperature of an answer.")
    response_top_p: float = Field(default=1.0, gt=0, le=1, description="Nucleus sampling of an answer.")
    response_max_tokens: int = Field(default=1024, ge=4, le=32768,
                                     description="Token limit of an answer; one that hits it fails as "
                                     "'truncated_response'.")
    min_words: int = Field(default=3, ge=1, description="A first query of fewer words: rejected ('too_short').")
    max_words: int = Field(default=300, ge=1, description="A query of more words: rejected ('too_long').")
    blacklist: list[str] = Field(default_factory=list, description="Whole words that reject a query (none by default).")
    seed: int | None = Field(default=None, description="Seeds each request.")

    @model_validator(mode="after")
    def _check(self) -> MagpieParams:
        if self.min_words > self.max_words:
            raise ValueError("min_words must not exceed max_words")
        if self.pre_query_template is not None and self.template != "auto":
            raise ValueError("give template or pre_query_template, not both")
        if any(not s for s in self.end_of_turn):
            raise ValueError("end_of_turn: each a non-empty string")
        return self
