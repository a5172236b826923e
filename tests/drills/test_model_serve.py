"""Drill: `sprout model serve` stops when told to, even while it decodes long requests.

Releasing llama.cpp's server waits for every request it is still decoding, so SIGTERM
took minutes while clients waited for long answers (or had stopped caring). The process
must end promptly; the hang guard below is generous, not a timing target."""

import os
import signal
import subprocess
import threading
import time

import httpx
import pytest

from app.core.llm.embedded import free_port, wait_ready
from tests.service_fixtures import ROOT, SPROUT

pytestmark = [pytest.mark.integration, pytest.mark.drill]

HANG_GUARD_S = 30  # decoding what the two clients asked for takes minutes on a CPU


def test_sigterm_stops_a_server_that_is_decoding_long_requests(tmp_path, embedded_model_path):
    port = free_port()
    url = f"http://127.0.0.1:{port}/v1"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPROUT_")}
    env.update(SPROUT_DATA_DIR=str(tmp_path / "data"), SPROUT_EMBEDDED_MODEL_PATH=str(embedded_model_path),
               SPROUT_EMBEDDED_PARALLEL="2", PYTHONPATH=str(ROOT))
    log_path = tmp_path / "serve.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([str(SPROUT), "model", "serve", "--port", str(port)], env=env, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
    body = {"model": "gemma-3-270m", "prompt": "Count from 1 to 100000, one number per line:\n1\n2\n",
            "max_tokens": 3500, "temperature": 0, "ignore_eos": True}

    def client() -> None:  # waits for an answer the server will not finish
        try:
            httpx.post(url + "/completions", json=body, timeout=600)
        except httpx.HTTPError:
            pass

    clients = [threading.Thread(target=client, daemon=True) for _ in range(2)]
    try:
        wait_ready(url, 300, proc)
        for thread in clients:
            thread.start()
        deadline = time.monotonic() + 300  # hang guard: both requests being decoded
        while log_path.read_text(errors="replace").count("processing task") < 2:
            assert proc.poll() is None and time.monotonic() < deadline, log_path.read_text(errors="replace")[-2000:]
            time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=HANG_GUARD_S)
        except subprocess.TimeoutExpired:
            pytest.fail(f"`sprout model serve` still runs {HANG_GUARD_S} s after SIGTERM:\n"
                        + log_path.read_text(errors="replace")[-2000:])
        assert proc.returncode == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for thread in clients:
            thread.join(timeout=10)
