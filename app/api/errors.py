"""One JSON error shape for every failure, and no traceback ever leaves the process.

Every error body is `{"detail": "<what is wrong, and where>"}`; every 422 adds (as documented,
`ValidationErrorBody`) `errors`, a list of `{"loc", "msg", "type"}` (without echoing the input, which may be a
50 MB file). The core's errors (`app.core.errors`) map by their root, one handler each: not
found 404, conflict 409, invalid input 422 (naming its field), unavailable 503; routes let
them through. Anything else is logged with its traceback and answered with a bare 500.

Request bodies are parsed as JSON by `app/core/records.py`, with its limits on nesting and
integer size (`LimitedJsonRoute`, the route class of every router): a body nested 100,000
deep, or an integer of 5,000 digits, is a 422 naming the line, not a parser crash.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute
from pydantic import ValidationError
from sqlalchemy.exc import DataError, IntegrityError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from app.core import records
from app.core.datasets import errors as ds_errors
from app.core.errors import Conflict, InvalidInput, NotFound, Unavailable
from app.core.seeds import SeedFormatError, line_of

log = logging.getLogger("sprout.api")


def _where(loc: Sequence[Any]) -> str:
    return ".".join(str(p) for p in loc) or "request"


def clean_errors(errors: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"loc": list(e.get("loc", ())), "msg": str(e.get("msg", "")), "type": str(e.get("type", ""))} for e in errors]


def summary(errors: Sequence[dict[str, Any]]) -> str:
    parts = [f"{_where(e['loc'])}: {e['msg']}" for e in errors[:10]]
    more = f" (and {len(errors) - 10} more)" if len(errors) > 10 else ""
    return "; ".join(parts) + more


def request_error(exc: ValidationError, *prefix: str | int) -> RequestValidationError:
    """A pydantic error raised inside a route, as a 422 whose locations start at `prefix`."""
    return RequestValidationError([{**e, "loc": (*prefix, *e["loc"])} for e in exc.errors()])


def field_error(loc: Sequence[str | int], msg: str, type_: str = "value_error") -> RequestValidationError:
    """A 422 naming one field, for checks pydantic cannot make (ids that must exist, ...)."""
    return RequestValidationError([{"loc": tuple(loc), "msg": msg, "type": type_}])


_FIELD_PREFIX = re.compile(r"^([a-z_]+(?:\[\d+\])*(?:\.[a-z_]+(?:\[\d+\])*)*): (.+)$", re.DOTALL)


def path_loc(path: str) -> list[str | int]:
    """"steps[1].params.target" -> ["steps", 1, "params", "target"]."""
    loc: list[str | int] = []
    for part in path.split("."):
        name, *indexes = part.split("[")
        if name:
            loc.append(name)
        loc += [int(i.rstrip("]")) for i in indexes]
    return loc


def dataset_error_fields(exc: ds_errors.DatasetError) -> list[dict[str, Any]]:
    """The body fields a datasets-core error names: every (path, message) of a recipe error
    (under `body.recipe`), or the `field: message` prefix of any other; [] when it names none."""
    if isinstance(exc, ds_errors.RecipeError):
        return [{"loc": ["body", "recipe", *(path_loc(p) if p != "recipe" else [])], "msg": m, "type": "value_error"}
                for p, m in exc.errors]
    match = _FIELD_PREFIX.match(str(exc))
    if match is None:
        return []
    return [{"loc": ["body", *path_loc(match.group(1))], "msg": match.group(2), "type": "value_error"}]


def input_fields(exc: InvalidInput) -> list[dict[str, Any]]:
    """The body fields an `InvalidInput` names: a datasets-core error's (see `dataset_error_fields`),
    else its `field` (with its `kind` as the type, when it has one); [] when it names none."""
    if isinstance(exc, ds_errors.DatasetError):
        return dataset_error_fields(exc)
    if exc.field is None:
        return []
    return [{"loc": ["body", *exc.field.split(".")], "msg": str(exc), "type": getattr(exc, "kind", "value_error")}]


def _seed_file(exc: SeedFormatError) -> JSONResponse:
    """Every bad line of a seed file (the first `MAX_REPORTED_PROBLEMS`), each with its line;
    `error_count` counts them all."""
    field = exc.field or "file"
    errors = [{"loc": ["body", field], "msg": problem, "type": "value_error", "line": line_of(problem)}
              for problem in exc.problems]
    return _json(422, f"seed file: {exc}", errors=errors, error_count=exc.total)


def _json(status: int, detail: str, headers: dict[str, str] | None = None, **extra: Any) -> JSONResponse:
    if status == 422 and "errors" not in extra:  # the documented 422 (`ValidationErrorBody`) always names fields
        extra["errors"] = _detail_errors(detail)
    return JSONResponse({"detail": detail, **extra}, status_code=status, headers=headers)


def _detail_errors(detail: str) -> list[dict[str, Any]]:
    """`errors` for a 422 raised as one message: its `field: message` prefix as the location
    (under `body` unless it names `body`, `query` or `path`), else the request as a whole."""
    match = _FIELD_PREFIX.match(detail)
    if match is None:
        return [{"loc": [], "msg": detail, "type": "value_error"}]
    loc = path_loc(match.group(1))
    if loc[:1] not in (["body"], ["query"], ["path"]):
        loc = ["body", *loc]
    return [{"loc": loc, "msg": match.group(2), "type": "value_error"}]


def parse_json_body(raw: bytes, where: str = "body") -> Any:
    """A request body as JSON, within the record reader's limits; 422 naming the line otherwise."""
    try:  # an HTTPException: FastAPI turns anything else raised while reading the body into a 400
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise HTTPException(422, f"{where}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    try:
        return records.loads(text)
    except records.RecordError as exc:
        raise HTTPException(422, f"{where}: {exc}") from None


class _LimitedJsonRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = parse_json_body(await self.body())
        return self._json


class LimitedJsonRoute(APIRoute):
    """A route whose JSON body is parsed with `parse_json_body` (set as each router's `route_class`)."""

    def get_route_handler(self) -> Any:
        handler = super().get_route_handler()

        async def limited(request: Request) -> Any:
            return await handler(_LimitedJsonRequest(request.scope, request.receive))

        return limited


def allowed_methods(request: Request) -> list[str]:
    """Every method some route serves at this request's path, and OPTIONS (answered here)."""
    methods = {"OPTIONS"}
    for method in ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"):
        scope = {**request.scope, "method": method}
        if any(route.matches(scope)[0] is Match.FULL for route in request.app.router.routes):
            methods.add(method)
    return sorted(methods)


def install(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = clean_errors(exc.errors())
        return _json(422, summary(errors), errors=errors)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        headers = getattr(exc, "headers", None)
        if exc.status_code == 405:  # the router names the methods of one route; a path may have several
            allow = ", ".join(allowed_methods(request))
            if request.method == "OPTIONS":
                return Response(status_code=204, headers={"Allow": allow})
            headers = {**(headers or {}), "Allow": allow}
        return _json(exc.status_code, str(exc.detail), headers=headers)

    # The core's errors: one handler per root of `app.core.errors` (a class with two roots names
    # its root first, so the lookup by class finds that one).
    @app.exception_handler(NotFound)
    async def _not_found(_: Request, exc: NotFound) -> JSONResponse:
        return _json(404, str(exc))

    @app.exception_handler(Conflict)
    async def _conflict(_: Request, exc: Conflict) -> JSONResponse:
        return _json(409, str(exc))

    @app.exception_handler(InvalidInput)
    async def _invalid(_: Request, exc: InvalidInput) -> JSONResponse:
        if isinstance(exc, SeedFormatError):
            return _seed_file(exc)
        fields = input_fields(exc)
        if fields:
            return _json(422, summary(fields), errors=fields)
        return _json(422, str(exc))

    @app.exception_handler(Unavailable)
    async def _unavailable(_: Request, exc: Unavailable) -> JSONResponse:
        log.warning("a service the request needs is unavailable: %s", exc)
        return _json(503, str(exc), headers={"Retry-After": "30"})

    @app.exception_handler(DataError)
    async def _data(_: Request, exc: DataError) -> JSONResponse:
        log.warning("value refused by the database: %s", exc.orig)
        return _json(422, f"a value was refused by the database: {str(exc.orig).splitlines()[0]}")

    @app.exception_handler(IntegrityError)
    async def _integrity(_: Request, exc: IntegrityError) -> JSONResponse:
        log.warning("integrity error: %s", exc.orig)
        return _json(409, "the request conflicts with stored data (it is referenced, or was changed meanwhile)")

    @app.exception_handler(OperationalError)
    async def _db_down(_: Request, exc: OperationalError) -> JSONResponse:
        log.error("database unavailable: %s", exc.orig)
        return _json(503, "the database is unavailable; try again shortly", headers={"Retry-After": "5"})

    @app.exception_handler(PoolTimeout)
    async def _pool_busy(_: Request, exc: PoolTimeout) -> JSONResponse:
        log.error("no database connection free: %s", exc)
        return _json(503, "the server is busy (every database connection is in use); try again shortly",
                     headers={"Retry-After": "2"})

    @app.exception_handler(UnicodeEncodeError)
    async def _unicode(_: Request, exc: UnicodeEncodeError) -> JSONResponse:
        return _json(422, "text is not valid Unicode (a lone surrogate such as \\ud800)")

    @app.exception_handler(Exception)
    async def _internal(request: Request, exc: Exception) -> JSONResponse:
        log.exception("internal error on %s %s", request.method, request.url.path)
        return _json(500, "internal error; it was logged on the server")
