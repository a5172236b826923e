"""The errors the datasets core raises for input a caller must fix.

Every one is a `DatasetError` (a `ValueError`) whose message names what is wrong and
where, so a shell maps the classes to status codes (404, 409, 422) or prints the message
as one CLI line; nothing is written when one is raised.
"""

from __future__ import annotations

from app.core.errors import Conflict, InvalidInput, NotFound


class DatasetError(InvalidInput):
    """Base class: bad input about a dataset, its versions, tags or schedule."""


class DatasetNotFound(NotFound, DatasetError):
    """No such dataset (for this owner)."""


class VersionNotFound(NotFound, DatasetError):
    """No such version, tag or example in the dataset."""


class DuplicateDataset(Conflict, DatasetError):
    """The owner already has a dataset of that name."""


class InvalidName(DatasetError):
    """A dataset or tag name that cannot be used."""


class VersionConflict(Conflict, DatasetError):
    """The change was prepared against a version that is no longer the latest (versions are linear)."""


class EmptyChange(DatasetError):
    """A commit, removal or correction that would change nothing."""


class VersionInUse(Conflict, DatasetError):
    """A version that cannot be deleted: not the latest, used by a training run, or tagged."""


class DatasetBusy(Conflict, DatasetError):
    """A change that must wait: a build of the dataset is queued or running."""


class CrossDatasetDiff(DatasetError):
    """A diff between versions of two different datasets."""


class ScheduleError(DatasetError):
    """An invalid cron expression, time zone or missed-fire policy."""


class RecipeError(DatasetError):
    """An invalid recipe; `errors` lists (field path, message) pairs, e.g. ("steps[1].source", ...)."""

    def __init__(self, errors: list[tuple[str, str]]):
        self.errors = errors
        super().__init__("; ".join(f"{path}: {msg}" for path, msg in errors))
