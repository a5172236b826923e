"""Shared field types and the page envelope."""

from __future__ import annotations

from typing import Annotated, Any, Generic, TypeVar

from pydantic import AfterValidator, BaseModel, Field

MAX_ID = 2**31 - 1
MAX_PAGE = 500

T = TypeVar("T")


def _no_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("contains a NUL character, which cannot be stored")
    return value


Text = Annotated[str, AfterValidator(_no_nul)]


def _storable(value: Any, where: str = "") -> Any:
    """Every string in a JSON value is storable: no NUL, no lone surrogate (`\\ud800`)."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError(f"{where or 'a string'} is not valid Unicode (a lone surrogate)") from None
        _no_nul(value)
    elif isinstance(value, dict):
        for key, item in value.items():
            _storable(key, f"key {key!r}")
            _storable(item, f"{where}.{key}".lstrip("."))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _storable(item, f"{where}[{i}]")
    return value


JsonObject = Annotated[dict[str, Any], AfterValidator(_storable)]
Id = Annotated[int, Field(ge=1, le=MAX_ID, examples=[1])]


class Page(BaseModel, Generic[T]):
    """One page of a list; ask for the next with `offset=offset+limit` while it is below `total`
    (or, where a list gives one, with `after=next_after`, which costs the same on every page)."""

    items: list[T]
    total: int = Field(description="Items matching the filters, all pages together.")
    limit: int
    offset: int
    next_after: str | None = Field(default=None, description="Where the next page starts (keyset paging, "
                                   "on lists that offer `after`); null on the last page.")


class ErrorBody(BaseModel):
    """Every error: what is wrong, and where."""

    detail: str = Field(examples=["no job with id 7"])


class FieldError(BaseModel):
    loc: list[str | int] = Field(examples=[["body", "params", "target"]])
    msg: str = Field(examples=["Input should be less than or equal to 1000000"])
    type: str = Field(examples=["less_than_equal"])
    line: int | None = Field(None, description="The line of an uploaded file at fault (a seed file's bad lines: "
                             "each one, the first 20).")


class ValidationErrorBody(ErrorBody):
    """A 422: `detail` sums up `errors`, one per bad field."""

    errors: list[FieldError]
    error_count: int | None = Field(None, description="All the problems found, where `errors` names only the first "
                                    "ones (a seed file with many bad lines).")


ERROR_RESPONSES: dict[int | str, dict] = {
    401: {"model": ErrorBody, "description": "No API key, or a bad or revoked one."},
    404: {"model": ErrorBody, "description": "No such resource (or not yours)."},
    422: {"model": ValidationErrorBody, "description": "Bad input; `errors` names each bad field."},
}
