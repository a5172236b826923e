"""Print the settings table from `app.settings.Settings` (the one source of truth).

`scripts/gen_reference.py` writes it into the docs' settings reference; run this file to print it.
"""

from __future__ import annotations

import json

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from app.settings import FLAT_PREFIXES, Settings


def _default(field) -> str:
    if field.default is not PydanticUndefined:
        value = field.default
    elif field.default_factory is not None:
        try:
            value = field.default_factory()
        except TypeError:
            value = "(computed)"
    else:
        value = ""
    if isinstance(value, BaseModel):
        return "(see below)"
    if value is None:
        return ""
    if isinstance(value, tuple):
        value = list(value)
    if field.default_factory is not None and "data_dir" in repr(field.default_factory):
        return "`~/.sprout`"
    return f"`{json.dumps(value) if isinstance(value, (list, dict, bool)) else value}`"


def rows(model: type[BaseModel], prefix: str):
    for name, field in model.model_fields.items():
        extra = field.json_schema_extra
        if isinstance(extra, dict) and extra.get("readOnly") is True:
            continue  # set by the service per job (a build step's `build`), not a setting
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            # a configuration read from flat names (`SPROUT_LLM_MODEL`), else nested (`SPROUT_TRAIN__LR`)
            flat = FLAT_PREFIXES.get(name) if model is Settings else None
            yield from rows(annotation, f"{prefix}{flat.upper()}" if flat else f"{prefix}{name.upper()}__")
            continue
        desc = (field.description or "").replace("|", "\\|")
        yield f"| `{prefix}{name.upper()}` | {_default(field)} | {desc} |"


def table() -> str:
    lines = ["| setting | default | meaning |", "|---|---|---|"]
    lines += list(rows(Settings, "SPROUT_"))
    return "\n".join(lines)


if __name__ == "__main__":
    print(table())
