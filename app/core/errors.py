"""The core's one error hierarchy: every error a caller can act on is one of four kinds.

`SproutError` is the root; `NotFound` (a referenced row does not exist, or is not the
caller's), `Conflict` (the request clashes with stored state: a duplicate, a stale version, a
running job), `InvalidInput` (input the caller must fix; `field` names where, when known) and
`Unavailable` (a service the request needs did not answer; trying again later may work).
Each module's own error classes subclass one of them and keep their names, so a shell maps
four roots (the API to 404/409/422/503, the CLI to one line) instead of every class. The
built-in bases are kept too (`InvalidInput` is a `ValueError`, `NotFound` a `LookupError`),
so `except ValueError` still catches bad input.

A class that belongs to two roots (a dataset that is not found is also a datasets error)
names its root first among its bases, so the root comes first in its method resolution
order and a handler looked up by class finds it.
"""

from __future__ import annotations


class SproutError(Exception):
    """Any error the core raises for a caller to act on."""


class NotFound(SproutError, LookupError):
    """A referenced row does not exist (or belongs to another owner)."""


class Conflict(SproutError):
    """The request clashes with stored state: a duplicate name, a stale version, work in progress."""


class InvalidInput(SproutError, ValueError):
    """Input the caller must fix; `field` names the field at fault (dotted, `a.b[0].c`), when known."""

    field: str | None = None

    def __init__(self, message: str = "", field: str | None = None):
        super().__init__(message)
        if field is not None:
            self.field = field


class Unavailable(SproutError):
    """A service the request needs (a model server, Redis, a destination) did not answer as needed."""


ROOTS: tuple[type[SproutError], ...] = (NotFound, Conflict, InvalidInput, Unavailable)


def root_of(exc: BaseException) -> type[SproutError] | None:
    """The root an error belongs to: the first of `ROOTS` in its class's method resolution order."""
    for cls in type(exc).__mro__:
        for root in ROOTS:
            if cls is root:
                return root
    return None
