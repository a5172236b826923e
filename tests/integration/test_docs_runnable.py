"""Every shell block the docs mark runnable runs as written, so a walk-through cannot drift.

A ```` ```bash ```` block right after `<!-- runnable -->` is a command-line walk-through: it
runs with bash (`-euo pipefail`) in a fresh folder that holds the repository's `.venv` and
`seeds/`, with its own data directory (SQLite) and the test session's embedded model server
as `SPROUT_LLM_BASE_URLS`. A block after `<!-- runnable: api -->` is a curl walk-through: a
real `sprout api` (uvicorn) and a real `sprout worker` run on the test PostgreSQL and Redis,
`$KEY` holds an API key, and `localhost:8000` in the block is replaced by the API's address.
A block passes when it exits 0 with no traceback.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.service_fixtures import api_settings, make_key, processes, service_env, wait_for  # noqa: F401

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
MARKER = re.compile(r"<!-- runnable(?:: (?P<mode>api))? -->\s*\n```bash\n(?P<code>.*?)\n```", re.S)


def runnable_blocks() -> list[tuple[str, str, str]]:
    blocks = []
    for page in sorted((ROOT / "docs").rglob("*.md")):
        for n, match in enumerate(MARKER.finditer(page.read_text(encoding="utf-8")), 1):
            blocks.append((f"{page.relative_to(ROOT / 'docs')}#{n}", match["mode"] or "cli", match["code"]))
    return blocks


BLOCKS = runnable_blocks()


def test_the_docs_have_runnable_walkthroughs():
    modes = {mode for _, mode, _ in BLOCKS}
    assert modes == {"cli", "api"}, f"runnable blocks: {[name for name, _, _ in BLOCKS]}"


def _workdir(tmp_path: Path) -> Path:
    work = tmp_path / "work"
    work.mkdir()
    (work / ".venv").symlink_to(ROOT / ".venv")
    (work / "seeds").symlink_to(ROOT / "seeds")
    return work


def _run(code: str, cwd: Path, env: dict[str, str], name: str) -> str:
    proc = subprocess.run(["bash", "-euo", "pipefail", "-c", code], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=1500)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"{name} exited {proc.returncode}:\n{output[-4000:]}"
    assert "Traceback" not in output, f"{name}:\n{output[-4000:]}"
    return output


@pytest.mark.parametrize(("name", "code"), [(n, c) for n, m, c in BLOCKS if m == "cli"])
def test_cli_walkthrough(name, code, tmp_path, llm_base_url):
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPROUT_")}
    env.update(SPROUT_DATA_DIR=str(tmp_path / "data"), SPROUT_LLM_BASE_URLS=llm_base_url,
               SPROUT_LLM_CONCURRENCY="4", PYTHONPATH=str(ROOT))
    work = _workdir(tmp_path)
    _run(code, work, env, name)
    written = [p for p in work.rglob("*") if p.is_file() and ".venv" not in p.parts and "seeds" not in p.parts]
    assert all(p.stat().st_size > 0 for p in written), f"{name} wrote an empty file: {written}"


@pytest.mark.parametrize(("name", "code"), [(n, c) for n, m, c in BLOCKS if m == "api"])
def test_curl_walkthrough(name, code, tmp_path, api_settings, processes, llm_base_url):
    from app.core.llm.embedded import free_port

    port = free_port()
    env = service_env(api_settings, SPROUT_LLM_BASE_URLS=llm_base_url)
    api = processes(["api", "--host", "127.0.0.1", "--port", str(port)], env, "api")
    worker = processes(["worker", "--pool", "solo"], env, "worker")

    def ready() -> bool:
        try:
            return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    wait_for(ready, "the API to answer", [api, worker])
    env = {**env, "KEY": make_key(api_settings.resolved_database_url, "docs")}
    output = _run(code.replace("localhost:8000", f"127.0.0.1:{port}"), _workdir(tmp_path), env, name)
    assert '"status": "succeeded"' in output or '"succeeded"' in output, output[-4000:]
