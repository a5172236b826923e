"""Every SPROUT_* setting, typed and documented once.

Values come, highest priority first, from: keyword arguments, environment variables
(`SPROUT_*`; nested fields with `__`, e.g. `SPROUT_SELF_INSTRUCT__TEMPERATURE=0.9`), the
TOML file named by `SPROUT_CONFIG` (if any), and the defaults below. The docs' settings
reference (`docs/reference/settings.md`) is generated from this file.

The method parameters (`SelfInstructParams`) live in the domain core; they are settings
here (the service-wide defaults) and job parameters there (one job's values), validated
by the same model.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, ValidationError, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from app.core.config import CoreConfig, EmbeddedConfig, JobConfig, JudgeRole, LLMConfig, ResponderRole
from app.core.handoff.config import HandoffConfig
from app.core.params import EvolInstructParams, SelfInstructParams
from app.core.training.config import TrainParams

# Nested configurations read from flat names: `Settings.llm.model` is `SPROUT_LLM_MODEL` (and a
# TOML file's `llm_model`), as these settings were named before they were nested; `SPROUT_LLM__MODEL`
# works as well, below the flat name.
FLAT_PREFIXES: dict[str, str] = {
    "llm": "llm_", "responder": "responder_", "judge": "judge_", "embedded": "embedded_", "jobs": "job_"}


def fold_flat_names(data: Any) -> Any:
    """`{"llm_model": "m"}` -> `{"llm": {"model": "m"}}`; a flat name wins over a nested one."""
    if not isinstance(data, dict):
        return data
    data = dict(data)
    for name, prefix in FLAT_PREFIXES.items():
        fields = Settings.model_fields[name].annotation.model_fields  # type: ignore[union-attr]
        flat = {key[len(prefix):]: data.pop(key) for key in list(data)
                if key.startswith(prefix) and key[len(prefix):] in fields}
        if not flat:
            continue
        nested = data.get(name)
        if isinstance(nested, BaseModel):
            nested = nested.model_dump()
        data[name] = {**(nested if isinstance(nested, dict) else {}), **flat}
    return data


class _Folded(PydanticBaseSettingsSource):
    """Another source (keyword arguments, the TOML file) with its flat names folded, so that
    the sources' priority holds between a flat name in one and a nested one in another."""

    def __init__(self, settings_cls: type[BaseSettings], inner: PydanticBaseSettingsSource) -> None:
        super().__init__(settings_cls)
        self.inner = inner

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        return fold_flat_names(self.inner())


class _FlatEnvSource(PydanticBaseSettingsSource):
    """The flat variables of the nested configurations (`SPROUT_LLM_BASE_URLS`), case-insensitive
    like the other variables, as raw strings (each model's validators parse them)."""

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        env = {key.lower(): value for key, value in os.environ.items()}
        flat = {}
        for name, prefix in FLAT_PREFIXES.items():
            for sub in self.settings_cls.model_fields[name].annotation.model_fields:  # type: ignore[union-attr]
                value = env.get(f"sprout_{prefix}{sub}")
                if value is not None:
                    flat[prefix + sub] = value
        return fold_flat_names(flat)


def _default_data_dir() -> Path:
    return Path(os.environ.get("SPROUT_DATA_DIR") or Path.home() / ".sprout")


class Settings(BaseSettings):
    """Service-wide configuration. Read once per process through `get_settings()`."""

    model_config = SettingsConfigDict(
        env_prefix="SPROUT_",
        env_nested_delimiter="__",
        extra="ignore",
    )

    # --- storage ---------------------------------------------------------------------
    data_dir: Path = Field(
        default_factory=_default_data_dir,
        description="Where Sprout keeps its SQLite database, the embedded model and exports.",
    )
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL. Default: SQLite file `<data_dir>/sprout.db`. "
        "PostgreSQL: `postgresql+psycopg://user:pass@host/db`.",
    )
    redis_url: str = Field(
        default="redis://127.0.0.1:6379/0",
        description="Celery broker and shared near-duplicate index.",
    )

    # --- the LLM server(s) -------------------------------------------------------------
    llm: LLMConfig = Field(
        default_factory=LLMConfig,
        description="The generator's model servers and how they are asked (`SPROUT_LLM_*`).",
    )
    responder: ResponderRole = Field(
        default_factory=ResponderRole,
        description="The responder role's own servers (`SPROUT_RESPONDER_*`); unset: the generator's.",
    )
    judge: JudgeRole = Field(
        default_factory=JudgeRole,
        description="The LLM judge's own servers (`SPROUT_JUDGE_*`); unset: the generator's.",
    )

    # --- the embedded model server -----------------------------------------------------
    embedded: EmbeddedConfig = Field(
        default_factory=EmbeddedConfig,
        description="The bundled model server a job starts when no endpoint is configured (`SPROUT_EMBEDDED_*`).",
    )

    metrics_enabled: bool = Field(
        default=True,
        description="Serve Prometheus metrics at `GET /metrics` on the API (no API key). Workers write theirs to "
        "`PROMETHEUS_MULTIPROC_DIR` (an environment variable of prometheus-client, not a Sprout setting); "
        "an API given the same folder shows them all.",
    )

    # --- jobs ------------------------------------------------------------------------------
    jobs: JobConfig = Field(
        default_factory=JobConfig,
        description="How running jobs commit, heartbeat and are taken over (`SPROUT_JOB_*`).",
    )

    dedup_redis: bool = Field(
        default=False,
        description="Keep near-duplicate indexes in Redis (SPROUT_REDIS_URL), shared by every worker; "
        "else in the job's process.",
    )

    # --- method defaults ---------------------------------------------------------------
    self_instruct: SelfInstructParams = Field(default_factory=SelfInstructParams)
    train: TrainParams = Field(
        default_factory=TrainParams,
        description="Defaults of `sprout train` and of `sft` jobs; a job's params and the CLI's options override them.",
    )
    evol_instruct: EvolInstructParams = Field(default_factory=EvolInstructParams)

    # --- hand-off to training pipelines (bundles, preflight, destinations, webhooks) --------
    handoff: HandoffConfig = Field(
        default_factory=HandoffConfig,
        description="Bundles, their preflight check, destinations and webhooks (`sprout handoff`, the API).",
    )

    # --- the service (API, workers, beat) ------------------------------------------------
    api_host: str = Field(default="127.0.0.1", description="Address `sprout api` listens on.")
    api_port: int = Field(default=8000, ge=1, le=65535, description="Port `sprout api` listens on.")
    api_db_slots: int = Field(
        default=4, ge=1, le=64,
        description="Requests one API process lets use the database at once (at most the pool's 10); the "
        "others wait without holding a thread, and get a 503 after 10 s.",
    )
    worker_concurrency: int = Field(
        default=1, ge=1, le=64,
        description="Jobs one `sprout worker` runs at once (one process each).",
    )
    reaper_interval_s: float = Field(
        default=30.0, gt=0,
        description="How often `sprout beat` re-enqueues running jobs whose worker stopped heartbeating, "
        "and queued jobs (queued longer than this) whose message the broker lost.",
    )
    schedule_tick_s: float = Field(
        default=30.0, gt=0, le=3600,
        description="How often `sprout beat` looks for dataset builds that are due (their schedules' cron times).",
    )
    readiness_timeout_s: float = Field(
        default=3.0, gt=0, description="Per-dependency timeout of `GET /readyz`."
    )

    @model_validator(mode="before")
    @classmethod
    def _flat_names(cls, data: Any) -> Any:
        """`Settings(llm_concurrency=4)` and a TOML file's `llm_model = ...`, as the variables read."""
        return fold_flat_names(data)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [
            _Folded(settings_cls, init_settings), _FlatEnvSource(settings_cls), env_settings]
        config_file = os.environ.get("SPROUT_CONFIG")
        if config_file:
            sources.append(_Folded(settings_cls, TomlConfigSettingsSource(settings_cls, toml_file=config_file)))
        return tuple(sources)

    def core_config(self) -> CoreConfig:
        """The typed configuration the domain core receives (it never reads settings itself)."""
        defaults = {name: value.model_dump(exclude_unset=True) for name, value in self
                    if isinstance(value, BaseModel) and name not in FLAT_PREFIXES}
        llm = self.llm
        return CoreConfig(
            data_dir=Path(self.data_dir),
            redis_url=self.redis_url,
            dedup_redis=self.dedup_redis,
            llm=llm,
            embedded=self.embedded,
            jobs=self.jobs,
            defaults=defaults,
            handoff=self.handoff_config(),
            judge=self.judge.resolve(llm),
            responder=self.responder.resolve(llm),
            prices={"generator": self.llm.price_per_million_tokens,
                    "responder": self.responder.price_per_million_tokens,
                    "judge": self.judge.price_per_million_tokens},
        )

    def handoff_config(self) -> HandoffConfig:
        """The hand-off settings with the trainer's defaults filled in (max_length, tokenizer) and
        the folder roots API users may deliver under (`<data_dir>/handoff/out` when none is set)."""
        updates: dict[str, Any] = {}
        if self.handoff.max_length is None:
            updates["max_length"] = self.train.max_length
        if self.handoff.tokenizer is None:
            updates["tokenizer"] = self.train.base_model
        if not self.handoff.folder_roots:
            updates["folder_roots"] = [Path(self.data_dir) / "handoff" / "out"]
        return self.handoff.model_copy(update=updates)

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.data_dir / 'sprout.db'}"


class SettingsError(ValueError):
    """An invalid setting, in one line: the variable, and what is wrong with its value."""


def describe(exc: ValidationError) -> str:
    """`SPROUT_LLM_CONCURRENCY: Input should be a valid integer ('many')`, errors joined by '; '."""
    parts = []
    for err in exc.errors():
        path = [str(p) for p in err["loc"] if not isinstance(p, int)]
        if len(path) > 1 and path[0] in FLAT_PREFIXES:  # the documented flat name
            path = [FLAT_PREFIXES[path[0]] + path[1], *path[2:]]
        name = "SPROUT_" + "__".join(path).upper() if path else "settings"
        message = str(err["msg"]).removeprefix("Value error, ")
        value = err.get("input")
        secret = any(word in name for word in ("KEY", "TOKEN", "SECRET", "PASSWORD"))
        shown = "" if secret or isinstance(value, dict) or "URL" in message else f" (got {str(value)[:80]!r})"
        parts.append(f"{name}: {message}{shown}")
    return "; ".join(parts)


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings; tests call `get_settings.cache_clear()` after changing env.
    Raises `SettingsError` (one line) on an invalid value."""
    config_file = os.environ.get("SPROUT_CONFIG")
    if config_file and not Path(config_file).is_file():
        raise SettingsError(f"SPROUT_CONFIG points to {config_file}, which is not a file")
    try:
        settings = Settings()
        settings.core_config()  # what the core would refuse later, refused now
    except ValidationError as exc:
        raise SettingsError(describe(exc)) from None
    except ValueError as exc:
        raise SettingsError(f"settings: {exc}") from None
    return settings


def settings_or_exit() -> Settings:
    """`get_settings()` for a process starting up (the API, a worker): an invalid setting
    ends it with one line on stderr, not a traceback."""
    try:
        return get_settings()
    except SettingsError as exc:
        raise SystemExit(f"error: {exc}") from None
