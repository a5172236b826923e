"""Tags: names for versions. `latest` moves by itself; user tags move on request.

`latest` is moved by every commit (in the commit's transaction) and cannot be set or
deleted by hand. A user tag (`prod`, `v2-approved`) points at any existing version and
moves only when asked: moving `prod` back to an older version is the rollback, and since
versions are immutable the older version is exactly what it was. A tag name is not a
number, so a reference (`resolve`) is unambiguous: a number is a version, `latest` or any
other name is a tag.
"""

from __future__ import annotations

import re

from sqlmodel import Session, col, select

from app.core.datasets import versions as v
from app.core.datasets.errors import DatasetError, InvalidName, VersionNotFound
from app.core.store import id_of
from app.models import Dataset, DatasetTag, DatasetVersion

TAG_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def validate_tag(name: str) -> str:
    if not isinstance(name, str) or not TAG_RE.fullmatch(name) or name.isdigit():
        raise InvalidName(
            f"tag {name!r} is invalid: use 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or "
            "digit, and not only digits (a number names a version)"
        )
    return name


def resolve(session: Session, dataset_id: int, ref: int | str) -> DatasetVersion:
    """The version a reference names: a number (int or digits), `latest`, or a user tag."""
    if isinstance(ref, int) or (isinstance(ref, str) and ref.isdigit()):
        return v.get_version(session, dataset_id, int(ref))
    row = session.exec(
        select(DatasetVersion)
        .join(DatasetTag, col(DatasetTag.version_id) == DatasetVersion.id)
        .where(DatasetTag.dataset_id == dataset_id, DatasetTag.name == ref)
    ).first()
    if row is None:
        if ref == v.LATEST_TAG:
            raise VersionNotFound("the dataset has no version yet")
        raise VersionNotFound(f"the dataset has no tag {ref!r}")
    return row


def set_tag(session: Session, dataset: Dataset, name: str, ref: int | str) -> DatasetTag:
    """Point the user tag `name` at the version `ref` names (create or move it); the caller commits.
    Raises `InvalidName`, `DatasetError` (`latest` is not settable), `VersionNotFound`."""
    validate_tag(name)
    if name == v.LATEST_TAG:
        raise DatasetError("the 'latest' tag moves by itself at each new version; choose another name")
    version = resolve(session, id_of(dataset), ref)
    return v.move_tag(session, id_of(dataset), name, id_of(version))


def delete_tag(session: Session, dataset: Dataset, name: str) -> None:
    if name == v.LATEST_TAG:
        raise DatasetError("the 'latest' tag cannot be deleted")
    tag = session.exec(select(DatasetTag).where(DatasetTag.dataset_id == dataset.id, DatasetTag.name == name)).first()
    if tag is None:
        raise VersionNotFound(f"the dataset has no tag {name!r}")
    session.delete(tag)
    session.flush()


def list_tags(session: Session, dataset_id: int) -> dict[str, int]:
    """Tag name -> version number, by name."""
    rows = session.exec(
        select(DatasetTag.name, DatasetVersion.number)
        .join(DatasetVersion, col(DatasetTag.version_id) == DatasetVersion.id)
        .where(DatasetTag.dataset_id == dataset_id)
        .order_by(DatasetTag.name)
    ).all()
    return {name: number for name, number in rows}
