"""Destinations: a folder reader never sees part of a bundle; the Hub's failures are clear
and say whether a retry can help."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import threading
from pathlib import Path

import pytest

from app.core.handoff import destinations
from app.core.handoff.bundle import BundleOptions, checksums, read_manifest, write_bundle
from app.core.handoff.destinations import DeliveryError, FolderDestination, HubDestination, build, check_config
from app.core.handoff.meta import HandoffMeta
from tests.fault_server import FaultyLLMServer


def _rows(version: int, n: int = 1500):
    return [{"id": i, "instruction": f"Task {i} of version {version}.", "input": "x" * (i % 50),
             "output": f"Answer {i} " * 20, "method": "self_instruct", "job_id": version} for i in range(n)]


def _bundle(tmp_path: Path, version: int, n: int = 1500) -> Path:
    meta = HandoffMeta(name="grown", source_kind="dataset_version", source_id=100 + version, version=version)
    return write_bundle(_rows(version, n), meta, tmp_path / "work" / f"v{version}", BundleOptions()).path


def _complete(folder: Path) -> str | None:
    """None when every file the manifest lists is there with its sha256; else what is wrong."""
    try:
        manifest = read_manifest(folder)
    except (OSError, ValueError) as exc:
        return f"{folder.name}: no readable manifest ({exc})"
    on_disk = checksums(folder)
    for name, entry in manifest["files"].items():
        if on_disk.get(name) != entry["sha256"]:
            return f"{folder.name}/{name}: missing or different"
    return None


def test_a_reader_polling_during_deliveries_sees_whole_bundles_only(tmp_path):
    bundles = [_bundle(tmp_path, v) for v in (1, 2, 3, 4)]
    root = tmp_path / "shared"
    base = root / "grown"
    seen: list[str] = []
    problems: list[str] = []
    stop = threading.Event()

    def reader():
        while True:
            done = stop.is_set()  # one last pass after the last delivery
            try:
                label = os.readlink(base / "latest")  # what a reader does: resolve once, then read that folder
            except OSError:
                label = None  # nothing delivered yet
            if label is not None:
                problem = _complete(base / label)
                if problem:
                    problems.append(problem)
                if not seen or seen[-1] != label:
                    seen.append(label)
            for entry in (os.listdir(base) if base.is_dir() else []):  # every visible version is whole
                if entry.startswith("v") and (problem := _complete(base / entry)):
                    problems.append(problem)
            if done:
                return

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        destination = FolderDestination(root)
        for bundle in bundles:
            location = destination.deliver(bundle, "grown", bundle.name)
            assert location == str(base / bundle.name)
    finally:
        stop.set()
        thread.join()
    assert problems == []
    assert seen and seen == sorted(seen, key=lambda s: int(s[1:])) and seen[-1] == "v4"
    assert sorted(os.listdir(base)) == ["latest", "latest.json", "v1", "v2", "v3", "v4"]  # no temporary left
    assert all(_complete(base / f"v{v}") is None for v in (1, 2, 3, 4))


def test_a_label_is_never_overwritten_and_a_repeat_is_a_no_op(tmp_path):
    first, other = _bundle(tmp_path, 1, 20), tmp_path / "other"
    meta = HandoffMeta(name="grown", source_kind="dataset_version", source_id=999, version=1)
    write_bundle(_rows(9, 20), meta, other, BundleOptions(formats=("messages",)))
    destination = FolderDestination(tmp_path / "shared")
    destination.deliver(first, "grown", "v1")
    before = checksums(tmp_path / "shared" / "grown" / "v1")
    assert destination.deliver(first, "grown", "v1") == str(tmp_path / "shared" / "grown" / "v1")  # same: fine
    with pytest.raises(DeliveryError, match="already holds a different bundle") as caught:
        destination.deliver(other, "grown", "v1")
    assert not caught.value.retryable and checksums(tmp_path / "shared" / "grown" / "v1") == before


def test_latest_does_not_move_back_to_an_older_version(tmp_path):
    destination = FolderDestination(tmp_path / "shared")
    destination.deliver(_bundle(tmp_path, 3, 10), "grown", "v3")
    destination.deliver(_bundle(tmp_path, 2, 10), "grown", "v2")  # a late retry of an older version
    assert os.readlink(tmp_path / "shared" / "grown" / "latest") == "v3"


def test_an_unwritable_folder_is_a_retryable_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(DeliveryError, match="cannot write to") as caught:
        FolderDestination(blocker).deliver(_bundle(tmp_path, 1, 5), "grown", "v1")
    assert caught.value.retryable


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_the_hub_unreachable_is_a_clear_retryable_error_and_the_bundle_stays(tmp_path):
    bundle = _bundle(tmp_path, 1, 10)
    before = checksums(bundle)
    endpoint = f"http://127.0.0.1:{_closed_port()}"
    hub = HubDestination("my-org/grown", token="hf_not_a_real_token", endpoint=endpoint)
    with pytest.raises(DeliveryError) as caught:
        hub.deliver(bundle, "grown", "v1")
    assert caught.value.retryable
    assert f"Hugging Face Hub at {endpoint}, repo my-org/grown" in str(caught.value)
    assert checksums(bundle) == before


@pytest.mark.parametrize("status, retryable", [(503, True), (429, True), (401, False), (403, False)])
def test_hub_http_errors_say_whether_a_retry_can_help(tmp_path, status, retryable):
    bundle = _bundle(tmp_path, 1, 5)
    with FaultyLLMServer(default=(status, '{"error": "injected fault"}')) as server:
        hub = HubDestination("my-org/grown", token="hf_not_a_real_token", endpoint=server.url.removesuffix("/v1"))
        with pytest.raises(DeliveryError, match=f"HTTP {status}") as caught:
            hub.deliver(bundle, "grown", "v1")
    assert caught.value.retryable is retryable


def test_the_hub_without_a_token_is_refused_before_any_request(tmp_path):
    with pytest.raises(DeliveryError, match="SPROUT_HANDOFF__HUB_TOKEN") as caught:
        HubDestination("my-org/grown").deliver(_bundle(tmp_path, 1, 5), "grown", "v1")
    assert not caught.value.retryable


def test_destination_configs_are_checked():
    assert destinations.check_config("hub", {"repo_id": "a/b"}) == {"repo_id": "a/b", "private": True}
    for kind, config, fragment in (("hub", {"repo_id": "nope"}, "repo_id"), ("folder", {"path": "rel/x"}, "absolute"),
                                   ("folder", {}, "needs a path"), ("s3", {}, "kind")):
        with pytest.raises(ValueError, match=fragment):
            destinations.check_config(kind, config)


# --- permissions: a trainer under another account reads what was delivered ----------------------
# the tests run as root, which may become any account
NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--"]


def _as_nobody(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([*NOBODY, *argv], capture_output=True, text=True, errors="replace", check=False)


@pytest.fixture
def shared_root():
    """A folder every account can enter (pytest's own temporary folders are root's only)."""
    root = Path(tempfile.mkdtemp(prefix="sprout-shared-", dir="/tmp"))
    os.chmod(root, 0o755)
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_a_delivered_bundle_is_readable_by_another_account_under_umask_022(tmp_path, shared_root, umask_022):
    FolderDestination(shared_root).deliver(_bundle(tmp_path, 1, 5), "grown", "v1")
    base = shared_root / "grown"
    files = [p for p in base.rglob("*") if p.is_file() and not p.is_symlink()]
    assert {p.name for p in files} >= {"latest.json", "messages.jsonl", "manifest.json", "README.md"}
    for path in files:
        assert path.stat().st_mode & 0o777 == 0o644, path
        read = _as_nobody("cat", str(path))
        assert read.returncode == 0, (path, read.stderr)
    for folder in [base, *(p for p in base.rglob("*") if p.is_dir() and not p.is_symlink())]:
        assert folder.stat().st_mode & 0o777 == 0o755, folder
    listed = _as_nobody("ls", str(base / "latest" / "data"))
    assert listed.returncode == 0 and ".parquet" in listed.stdout
    assert _as_nobody("cat", str(base / "latest" / "messages.jsonl")).stdout.count("\n") == 5


def test_a_destinations_mode_is_applied_and_keeps_others_out(tmp_path, shared_root, umask_022):
    destination = build("folder", {"path": str(shared_root), "mode": "640"})
    destination.deliver(_bundle(tmp_path, 1, 5), "grown", "v1")
    bundle = shared_root / "grown" / "v1"
    assert (bundle / "messages.jsonl").stat().st_mode & 0o777 == 0o640
    assert (bundle / "data").stat().st_mode & 0o777 == 0o750
    assert (shared_root / "grown" / "latest.json").stat().st_mode & 0o777 == 0o640
    assert _as_nobody("cat", str(bundle / "messages.jsonl")).returncode != 0


def test_a_bad_mode_is_refused_naming_the_field():
    for bad in ("999", "rw-r--r--", "044", 644.5, True):
        with pytest.raises(ValueError, match=r"^mode: "):
            check_config("folder", {"path": "/srv/x", "mode": bad})
    assert check_config("folder", {"path": "/srv/x", "mode": "0644"}) == {"path": "/srv/x", "mode": "0644"}
    assert check_config("folder", {"path": "/srv/x", "mode": None}) == {"path": "/srv/x"}
