"""CLI options generated from a pydantic params model, so a default is written once: in the model.

`params_options(Model, into="overrides")` decorates a Typer command: every field of the model
becomes an option (`field_name` -> `--field-name`, extra names via `names`), typed from the
annotation, its help the field's description and its default the model's (so `--help` shows
it). The command receives only the options the user gave (click's parameter source, not the
value, tells), as a dict under `into`, and layers it over its other sources (settings, a
config file) before building the model, which validates every value (so a bad value fails
the same way from an option, a file or the API). With `build=True` it receives the model
itself, built from the options given, and a bad value is one CLI line naming its option.

Mapping: bool -> `--x/--no-x`; a `Literal` -> its values, shown as choices and checked by the
model; `bool | Literal[...]` -> the literal values plus true/false; `list[...]` -> a repeatable
option (`str | list[str]`: one value stays a string, several make a list); `X | None` -> X.
A field of any other type is refused when the command is built, so no field goes missing.
"""

from __future__ import annotations

import functools
import inspect
import re
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import typer
from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from app.cli.common import CliError

_SCALARS = (int, float, str, Path)
_CTX = "params_options_context"  # the click context Typer passes in: it says which options were given


def option_name(field: str) -> str:
    """The option a field gets by default: `max_steps` -> `--max-steps`."""
    return "--" + field.replace("_", "-")


def _union_args(annotation: Any) -> list[Any]:
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return [a for a in typing.get_args(annotation) if a is not type(None)]
    return [annotation]


def _literal_values(args: list[Any]) -> list[str] | None:
    values: list[str] = []
    for arg in args:
        if typing.get_origin(arg) is Literal:
            values += [str(v) for v in typing.get_args(arg)]
        elif arg is bool:
            values += ["true", "false"]
        else:
            return None
    return values if any(typing.get_origin(a) is Literal for a in args) else None


def _default(info: FieldInfo) -> Any:
    """The model's default, as click shows it (None where the field has none)."""
    if info.default_factory is not None:
        return info.default_factory()  # type: ignore[call-arg]
    return None if info.default is PydanticUndefined else info.default


def _option(field: str, info: FieldInfo, names: Sequence[str], fields: Mapping[str, str]) -> tuple[Any, Any]:
    """(annotation, typer.Option) of one field; TypeError for a type with no option form."""
    args = _union_args(info.annotation)
    help_text = _help(info.description or "", fields)
    default = _default(info)
    common: dict[str, Any] = {"help": help_text}
    if args == [bool]:
        decls = [f"{n}/--no-{n[2:]}" if n.startswith("--") else n for n in names]
        return bool | None, typer.Option(default, *decls, **common)
    choices = _literal_values(args)
    if choices is not None:
        return str | None, typer.Option(default, *names, metavar=_choices(choices), **common)
    lists = [a for a in args if typing.get_origin(a) is list]
    if lists and default is not None and not isinstance(default, list):
        default = [default]
    if lists:
        common["help"] = help_text[:-1] + " (repeatable)." if help_text.endswith(".") else help_text + " (repeatable)"
    if lists and all(a in _SCALARS or typing.get_origin(a) is list for a in args):
        (item,) = typing.get_args(lists[0]) or (str,)
        item_choices = _literal_values([item])
        if item_choices is not None:
            return list[str] | None, typer.Option(default, *names, metavar=_choices(item_choices), **common)
        if item not in _SCALARS:
            raise TypeError(f"{field}: no CLI option for a list of {item!r}")
        return list[item] | None, typer.Option(default, *names, **common)  # type: ignore[valid-type]
    if len(args) == 1 and args[0] in _SCALARS:
        return args[0] | None, typer.Option(default, *names, **common)
    raise TypeError(f"{field}: no CLI option for the type {info.annotation!r}")


def _choices(values: Sequence[str]) -> str:
    """The metavar that lists a field's values; the model, not click, checks them (one error style)."""
    return "[" + "|".join(values) + "]"


def _help(description: str, fields: Mapping[str, str]) -> str:
    """The field's description, a `field_name` it mentions written as its option."""
    return re.sub(r"`(\w+)`", lambda m: f"`{fields[m[1]]}`" if m[1] in fields else m[0], description)


def _given(field: str, info: FieldInfo, value: Any) -> Any:
    """The value as the model takes it: a one-item list stays a string where the field allows one."""
    if isinstance(value, list | tuple):
        value = list(value)
        if len(value) == 1 and str in _union_args(info.annotation):
            return value[0]
    return value


def _built(model: type[BaseModel], given: dict[str, Any], fields: Mapping[str, str]) -> BaseModel:
    """The model from the options given; a bad value is one line that names its option."""
    try:
        return model(**given)
    except ValidationError as exc:
        parts = []
        for err in exc.errors():
            where = [str(p) for p in err["loc"]]
            if where and where[0] in fields:
                where[0] = fields[where[0]]
            parts.append(f"{'.'.join(where) or 'value'}: {err['msg']}")
        raise CliError("; ".join(parts)) from None


def params_options(
    model: type[BaseModel],
    *,
    into: str,
    names: Mapping[str, Sequence[str]] | None = None,
    exclude: Sequence[str] = (),
    only: Sequence[str] | None = None,
    build: bool = False,
    panel: str | None = None,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Adds an option per field of `model` to a Typer command; the ones given arrive as a dict in `into`.

    `names`: a field's option names when not (only) `--field-name`, e.g. `{"learning_rate": ["--lr"]}`.
    `exclude`: fields the command sets itself; `only`: the fields that get an option (default: all).
    `build`: `into` receives the model built from the options given (a bad value: one CLI line
    naming the option) instead of the dict. `panel`: the `--help` panel the options are listed under.
    """
    names = dict(names or {})
    unknown = (set(names) | set(exclude) | set(only or ())) - set(model.model_fields)
    if unknown:
        raise ValueError(f"{model.__name__} has no field {sorted(unknown)}")
    chosen = [f for f in (only if only is not None else model.model_fields) if f not in exclude]
    fields = {f: names.get(f, [option_name(f)])[0] for f in chosen}

    def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
        signature = inspect.signature(func, eval_str=True)
        own = [p for p in signature.parameters.values() if p.name != into]
        if len(own) == len(signature.parameters):
            raise ValueError(f"{func.__name__} has no parameter {into!r}")
        taken = {p.name for p in own}
        generated = []
        for field in fields:
            if field in taken:
                raise ValueError(f"{func.__name__}: the parameter {field!r} hides the field of the same name")
            info = model.model_fields[field]
            annotation, option = _option(field, info, names.get(field, [option_name(field)]), fields)
            if panel:
                option.rich_help_panel = panel
            generated.append(inspect.Parameter(field, inspect.Parameter.KEYWORD_ONLY, default=option, annotation=annotation))

        @functools.wraps(func)
        def command(**kwargs: Any) -> Any:
            ctx: typer.Context = kwargs.pop(_CTX)
            given = {}
            for field in fields:
                value = kwargs.pop(field)
                source = ctx.get_parameter_source(field)
                if source is not None and source.name not in ("DEFAULT", "DEFAULT_MAP"):
                    given[field] = _given(field, model.model_fields[field], value)
            return func(**kwargs, **{into: _built(model, given, fields) if build else given})

        context = inspect.Parameter(_CTX, inspect.Parameter.KEYWORD_ONLY, annotation=typer.Context)
        parameters = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in own] + generated + [context]
        command.__signature__ = signature.replace(parameters=parameters)  # type: ignore[attr-defined]
        command.__annotations__ = {p.name: p.annotation for p in parameters} | {"return": signature.return_annotation}
        del command.__wrapped__  # Typer reads the new signature, not the wrapped one's
        return command

    return decorate
