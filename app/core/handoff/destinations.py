"""Where bundles go: a folder a training cluster reads, or a Hugging Face Hub dataset repo.

**Folder.** A bundle lands in `<path>/<name>/<label>` (`v<N>` for a dataset version,
`job-<id>` for a job). It is copied under a hidden temporary name in the same folder and
renamed into place, so a reader never sees part of a bundle; `<path>/<name>/latest` (a
symlink swapped with `os.replace`) and `latest.json` (replaced atomically) then point at
it, for readers that poll one fixed path. A label is never overwritten: delivering the
same bundle again is a no-op, a different one under a taken label is refused.

**Hub.** The bundle is uploaded to the root of a dataset repo (created private by
default), files the new bundle no longer has are removed, and the commit is tagged with
the label, so `load_dataset(repo, revision="v3")` reads that version. The token comes
from the configuration, never from a stored row.

Every failure is a `DeliveryError`: `retryable` says whether trying again later can help
(the network, a full disk) or not (a taken label, a refused token).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from app.core import records
from app.core.errors import Unavailable
from app.core.handoff.bundle import read_manifest

KINDS = ("folder", "hub")
LATEST = "latest"
LATEST_JSON = "latest.json"
_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]{0,95}/[A-Za-z0-9][\w.-]{0,95}$")


class DeliveryError(Unavailable):
    def __init__(self, message: str, retryable: bool = True):
        super().__init__(message)
        self.retryable = retryable


class Destination(Protocol):
    @property
    def kind(self) -> str: ...  # read-only: the destinations are frozen dataclasses

    def deliver(self, bundle_dir: Path, name: str, label: str) -> str:
        """Put the bundle in place; returns where it is (a path or a URL). Raises DeliveryError."""
        ...


def _label_number(label: str) -> int | None:
    match = re.fullmatch(r"v(\d+)", label)
    return int(match.group(1)) if match else None


def _same_bundle(a: Path, b: Path) -> bool:
    try:
        same: bool = read_manifest(a)["files"] == read_manifest(b)["files"]
        return same
    except (OSError, ValueError, KeyError):
        return False


def _fsync_tree(folder: Path) -> None:
    """Flush a copied tree to disk before it is renamed into sight (a shared disk may be read
    from another machine right after)."""
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            fd = os.open(path, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)


@dataclass(frozen=True)
class FolderDestination:
    """Bundles land with the modes of new files under this process's umask (a bundle is
    built from owner-only temporary files), or with `mode` (files; folders also get the
    search bit where they are readable), so a trainer under another account can read them."""

    root: Path
    kind: str = "folder"
    mode: int | None = None

    def deliver(self, bundle_dir: Path, name: str, label: str) -> str:
        base = Path(self.root) / name
        final = base / label
        tmp = base / f".{label}.tmp-{uuid.uuid4().hex[:12]}"
        try:
            base.mkdir(parents=True, exist_ok=True)
            if final.exists():
                if not _same_bundle(final, bundle_dir):
                    raise DeliveryError(f"{final} already holds a different bundle; a label is never overwritten",
                                        retryable=False)
            else:
                shutil.copytree(bundle_dir, tmp)
                records.chmod_tree(tmp, self.mode)
                _fsync_tree(tmp)
                os.rename(tmp, final)
            self.point_latest(base, label, self.mode)
        except DeliveryError:
            raise
        except OSError as exc:
            raise DeliveryError(f"cannot write to {base}: {exc.strerror or exc}") from exc
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return str(final)

    @staticmethod
    def point_latest(base: Path, label: str, mode: int | None = None) -> None:
        """Point `latest` and `latest.json` at `label`, unless they point at a newer `v<N>`."""
        current = None
        with contextlib.suppress(OSError, ValueError, KeyError):
            current = json.loads((base / LATEST_JSON).read_text(encoding="utf-8"))["label"]
        new_n, current_n = _label_number(label), _label_number(current or "")
        if new_n is not None and current_n is not None and current_n > new_n:
            return
        link = base / LATEST
        if link.exists() and not link.is_symlink():
            raise DeliveryError(f"{link} exists and is not a symlink; move it away", retryable=False)
        tmp_link = base / f".{LATEST}.tmp-{uuid.uuid4().hex[:12]}"
        os.symlink(label, tmp_link, target_is_directory=True)
        try:
            os.replace(tmp_link, link)
        except OSError:
            tmp_link.unlink(missing_ok=True)
            raise
        with records.atomic_file(base / LATEST_JSON, permissions=mode) as fh:
            json.dump({"label": label, "path": label, "updated_at": datetime.now(UTC).isoformat(timespec="seconds")},
                      fh, indent=2)
            fh.write("\n")


@dataclass(frozen=True)
class HubDestination:
    repo_id: str
    private: bool = True
    token: str | None = None
    endpoint: str | None = None
    kind: str = "hub"

    def deliver(self, bundle_dir: Path, name: str, label: str) -> str:
        if not self.token:
            raise DeliveryError("no Hugging Face token is configured (SPROUT_HANDOFF__HUB_TOKEN)", retryable=False)
        from huggingface_hub import HfApi

        api = HfApi(endpoint=self.endpoint, token=self.token)
        where = self.endpoint or "https://huggingface.co"
        try:
            api.create_repo(self.repo_id, repo_type="dataset", private=self.private, exist_ok=True)
            commit = api.upload_folder(folder_path=str(bundle_dir), repo_id=self.repo_id, repo_type="dataset",
                                       commit_message=f"Sprout hand-off {name} {label}", delete_patterns=["*"])
            api.create_tag(self.repo_id, tag=label, repo_type="dataset", revision=commit.oid, exist_ok=True)
        except Exception as exc:  # huggingface_hub raises HTTP, connection, validation and OS errors
            raise DeliveryError(f"Hugging Face Hub at {where}, repo {self.repo_id}: {_describe(exc)}",
                                retryable=_retryable(exc)) from exc
        return f"{where}/datasets/{self.repo_id}/tree/{label}"


def _status(exc: BaseException) -> int | None:
    response = getattr(exc, "response", None)
    return getattr(response, "status_code", None)


def _retryable(exc: BaseException) -> bool:
    """Network trouble and 5xx/408/429 can pass; other 4xx (a bad token, a forbidden repo) cannot."""
    status = _status(exc)
    if status is not None:
        return status >= 500 or status in (408, 429)
    return not isinstance(exc, ValueError)


def _describe(exc: BaseException) -> str:
    status = _status(exc)
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return f"HTTP {status}: {text}" if status is not None else f"{type(exc).__name__}: {text}"


def _file_mode(value: Any) -> str:
    """A folder destination's `mode`: octal digits ("640", "0644"), the owner able to read and write."""
    text = str(value).strip()
    if not re.fullmatch(r"0?[0-7]{3}", text) or isinstance(value, bool):
        raise ValueError(f"mode: must be an octal file mode such as '644' or '0640', got {value!r}")
    if int(text, 8) & 0o600 != 0o600:
        raise ValueError(f"mode: the owner must be able to read and write (6xx), got {value!r}")
    return f"0{int(text, 8):o}"


def check_config(kind: str, config: dict[str, Any]) -> dict[str, Any]:
    """A destination's stored config, validated: `{"path"}` (and an optional file `mode`, as
    octal text) for a folder, `{"repo_id", "private"}` for the Hub. Raises ValueError naming
    the field."""
    if kind == "folder":
        path = config.get("path")
        if not isinstance(path, str) or not path.strip():
            raise ValueError("path: a folder destination needs a path")
        if not Path(path).is_absolute():
            raise ValueError(f"path: must be absolute, got {path!r}")
        checked: dict[str, Any] = {"path": str(Path(path))}
        if config.get("mode") is not None:
            checked["mode"] = _file_mode(config["mode"])
        return checked
    if kind == "hub":
        repo_id = config.get("repo_id")
        if not isinstance(repo_id, str) or not _REPO_ID.match(repo_id):
            raise ValueError(f"repo_id: must be 'owner/name' (letters, digits, '-', '_', '.'), got {repo_id!r}")
        return {"repo_id": repo_id, "private": bool(config.get("private", True))}
    raise ValueError(f"kind: must be one of {', '.join(KINDS)}, got {kind!r}")


def build(kind: str, config: dict[str, Any], hub_token: str | None = None, hub_endpoint: str | None = None) -> Destination:
    """The destination a stored row describes (the Hub token from the configuration)."""
    config = check_config(kind, config)
    if kind == "folder":
        mode = config.get("mode")
        return FolderDestination(Path(config["path"]), mode=int(mode, 8) if mode else None)
    return HubDestination(config["repo_id"], private=config["private"], token=hub_token, endpoint=hub_endpoint)

