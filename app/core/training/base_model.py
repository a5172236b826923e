"""The base model: a Hugging Face folder, or a GGUF file converted once and cached.

Training needs full-precision weights in the transformers layout. A GGUF is dequantized by
transformers (`gguf_file=`), which takes ~40 s and 3 GB for Gemma 3 270M, so the result is
saved under `<cache>/<sha256 of the file>`: the same file is converted once, a changed file
(new sha256) is converted again, and the cache lives outside the repository.

Two facts of the conversion are checked rather than trusted: the quantization config is
removed (transformers refuses to save or train a model that still carries it), and the
tokenizer must add BOS (one conversion dropped it, and every completion became garbage) -
unless the GGUF itself says not to (`tokenizer.ggml.add_bos_token = false`: SmolLM2, whose
BOS is `<|im_start|>` and whose chat template opens every turn itself; forcing it there put
a stray `<|im_start|>` before every prompt). A folder converted before that rule, from such
a GGUF, is converted again.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

from app.core.methods.prompts import gemma_chat_template
from app.core.training.errors import BaseModelError

DEFAULT_BASE_MODEL = "default"
_COMPLETE_MARKER = "sprout-conversion.json"


def default_cache_dir() -> Path:
    """Where a library caller's converted models go when it names no folder. The shells
    always name one (`<SPROUT_DATA_DIR>/hf-models`, with the rest of Sprout's data)."""
    return Path.home() / ".cache" / "sprout" / "hf-models"


def file_sha256(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def resolve_base_model(spec: str, cache_dir: Path | None = None) -> Path:
    """The Hugging Face folder for `spec`: 'default', a model folder, or a GGUF file."""
    cache = Path(cache_dir) if cache_dir else default_cache_dir()
    if spec == DEFAULT_BASE_MODEL:
        from app.core.llm.embedded import bundled_model_path

        return convert_gguf(bundled_model_path(cache.parent), cache)
    path = Path(spec).expanduser()
    if path.is_file():
        if path.suffix.lower() != ".gguf":
            raise BaseModelError(f"{path}: a base model file must be a .gguf file")
        return convert_gguf(path, cache)
    if path.is_dir():
        if (path / "config.json").is_file():
            return path
        ggufs = sorted(path.glob("*.gguf"))
        if len(ggufs) == 1:
            return convert_gguf(ggufs[0], cache)
        raise BaseModelError(f"{path}: not a Hugging Face model folder (no config.json) nor a folder with one .gguf")
    raise BaseModelError(f"base model {spec!r}: no such file or folder (use 'default', a model folder or a .gguf file)")


def convert_gguf(gguf_path: Path, cache_dir: Path) -> Path:
    """Dequantize a GGUF into a Hugging Face folder once; later calls return the cached folder.

    The folder is written under a temporary name and renamed into place, so a crash or a
    second process converting the same file never leaves a half-written folder that looks done.
    """
    gguf_path = Path(gguf_path)
    if not gguf_path.is_file():
        raise BaseModelError(f"{gguf_path}: no such GGUF file")
    sha = file_sha256(gguf_path)
    target = Path(cache_dir) / sha
    add_bos = gguf_adds_bos(gguf_path)
    if (target / _COMPLETE_MARKER).is_file() and not _forced_bos_against_gguf(target, add_bos):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f".{sha}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        _convert_into(gguf_path, tmp, add_bos)
        (tmp / _COMPLETE_MARKER).write_text(
            json.dumps({"source": gguf_path.name, "sha256": sha, "add_bos": add_bos}, indent=2), encoding="utf-8"
        )
        if target.exists() and (
            not (target / _COMPLETE_MARKER).is_file() or _forced_bos_against_gguf(target, add_bos)
        ):
            shutil.rmtree(target)  # an unfinished folder left by an older crash, or a stale one
        try:
            os.replace(tmp, target)
        except OSError:
            if not (target / _COMPLETE_MARKER).is_file():
                raise
            # another process finished the same conversion first: use its folder
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def gguf_adds_bos(gguf_path: Path) -> bool | None:
    """The GGUF's own `tokenizer.ggml.add_bos_token`; None when it does not say (or is no GGUF)."""
    try:
        from gguf import GGUFReader

        field = GGUFReader(str(gguf_path)).fields.get("tokenizer.ggml.add_bos_token")
        return None if field is None else bool(field.contents())
    except Exception:  # not a GGUF, or a broken one: the conversion reports that
        return None


def _forced_bos_against_gguf(folder: Path, add_bos: bool | None) -> bool:
    """A cached folder written before the GGUF's `add_bos_token = false` was honoured."""
    if add_bos is not False:
        return False
    try:
        marker = json.loads((folder / _COMPLETE_MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return True
    return not isinstance(marker, dict) or marker.get("add_bos") is not False


def _convert_into(gguf_path: Path, out: Path, add_bos: bool | None = None) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder, name = str(gguf_path.parent), gguf_path.name
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
        model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    except Exception as exc:  # transformers raises many types for an unsupported or corrupt file
        raise BaseModelError(f"{gguf_path}: cannot convert this GGUF ({type(exc).__name__}: {exc})") from exc
    quantizer = getattr(model, "hf_quantizer", None)
    if quantizer is not None:
        quantizer.remove_quantization_config(model)
    ensure_bos(tokenizer, wanted=add_bos is not False)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)


def ensure_bos(tokenizer: Any, wanted: bool = True) -> None:
    """Make the tokenizer add BOS when the model has one; raise if it cannot be made to.
    With `wanted=False` (the GGUF says it adds none) make sure it adds none."""
    bos = tokenizer.bos_token_id
    if bos is None:
        return
    if not wanted:
        if tokenizer("hello").input_ids[:1] == [bos]:
            tokenizer.add_bos_token = False
            if tokenizer("hello").input_ids[:1] == [bos]:
                raise BaseModelError("the converted tokenizer adds a BOS token its GGUF says not to add")
        return
    if tokenizer("hello").input_ids[:1] == [bos]:
        return
    tokenizer.add_bos_token = True
    if tokenizer("hello").input_ids[:1] != [bos]:
        raise BaseModelError("the converted tokenizer does not add the BOS token and cannot be made to")


def load_model_and_tokenizer(folder: Path, dtype: Any, attn_implementation: str) -> tuple[Any, Any]:
    """Load a Hugging Face folder for training, with a chat template and a pad token.

    A model without a chat template (the GGUF conversions) gets Gemma's; a tokenizer without
    a pad token pads with EOS (padding is masked out of the loss and the attention anyway).
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(folder)
        model = AutoModelForCausalLM.from_pretrained(folder, dtype=dtype, attn_implementation=attn_implementation)
    except (OSError, ValueError) as exc:
        raise BaseModelError(f"{folder}: cannot load the model ({exc})") from exc
    if not getattr(tokenizer, "is_fast", False):
        raise BaseModelError(f"{folder}: a fast tokenizer (tokenizer.json) is needed for response-only loss masks")
    if not tokenizer.chat_template:
        tokenizer.chat_template = gemma_chat_template()
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model.config.pad_token_id = tokenizer.pad_token_id
    if model.generation_config is not None:
        model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model, tokenizer


def load_tokenizer(spec: str, cache_dir: Path | None = None) -> Any:
    """The tokenizer of a base model ('default', a Hugging Face folder or a GGUF file) with the
    chat template the trainer renders with (its own, else Gemma's), without loading weights.

    A GGUF already converted for training is read from the cache; otherwise only its
    tokenizer is read from the file (no conversion). For checks of data before training.
    """
    from transformers import AutoTokenizer

    cache = Path(cache_dir) if cache_dir else default_cache_dir()
    if spec == DEFAULT_BASE_MODEL:
        from app.core.llm.embedded import bundled_model_path

        path = bundled_model_path(cache.parent)
    else:
        path = Path(spec).expanduser()
    try:
        if path.is_dir():
            tokenizer = AutoTokenizer.from_pretrained(path)
        elif path.is_file() and path.suffix.lower() == ".gguf":
            converted = cache / file_sha256(path)
            add_bos = gguf_adds_bos(path)
            if (converted / _COMPLETE_MARKER).is_file() and not _forced_bos_against_gguf(converted, add_bos):
                tokenizer = AutoTokenizer.from_pretrained(converted)
            else:
                tokenizer = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
                ensure_bos(tokenizer, wanted=add_bos is not False)
        else:
            raise BaseModelError(f"tokenizer {spec!r}: not a folder nor a .gguf file (use 'default', a model "
                                 "folder or a .gguf file)")
    except (OSError, ValueError) as exc:
        if isinstance(exc, BaseModelError):
            raise
        raise BaseModelError(f"{path}: cannot load a tokenizer ({exc})") from exc
    if not getattr(tokenizer, "is_fast", False):
        raise BaseModelError(f"{path}: a fast tokenizer (tokenizer.json) is needed for loss masks")
    if not tokenizer.chat_template:
        tokenizer.chat_template = gemma_chat_template()
    return tokenizer
