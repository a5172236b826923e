"""The methods' parameters, with the papers' values as defaults.

One model per method. It is both the service-wide default (a nested setting, see
`app.settings`) and the validated parameters of one job (the API and the CLI build it
from user input, so a typo or an out-of-range value is refused before a job exists).
Sources: Self-Instruct (Wang et al., 2022) and its reference code; see
`ARCHITECTURE.md` for where the project departs from the reference code and why.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

# The paper's word blacklist (Self-Instruct, section 2.3 and the reference code).
PAPER_BLACKLIST = [
    "image", "images", "graph", "graphs", "picture", "pictures", "file", "files",
    "map", "maps", "draw", "plot", "go to",
]
# Stanford Alpaca's additions, offered as an option.
ALPACA_EXTRA_BLACKLIST = ["video", "audio", "music", "flowchart", "diagram"]


class SelfInstructParams(BaseModel):
    """Parameters of one Self-Instruct job (defaults: the paper's)."""

    model_config = ConfigDict(extra="forbid")

    target: int = Field(
        default=100, ge=1, le=1_000_000,
        description="Stop when this many machine instructions are curated (accepted, with instances).",
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
    def _check(self) -> "SelfInstructParams":
        if self.prompt_machine_instructions >= self.prompt_instructions:
            raise ValueError("prompt_machine_instructions must be smaller than prompt_instructions")
        if self.min_words > self.max_words:
            raise ValueError("min_words must not exceed max_words")
        if self.stop_at_item <= self.prompt_instructions + 1:
            raise ValueError("stop_at_item must leave room for at least one new item")
        return self
