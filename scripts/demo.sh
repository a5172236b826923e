#!/usr/bin/env bash
# Quick start, command one: install, then grow the default seeds into 100 curated
# instructions with the embedded model (Gemma 3 270M on llama.cpp), and show them.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export SPROUT_DATA_DIR=${SPROUT_DATA_DIR:-$PWD/.sprout}
mkdir -p out
exec .venv/bin/sprout generate --seeds seeds/default.jsonl --target "${TARGET:-100}" \
  --out out/demo-alpaca.json --format alpaca --examples 5 "$@"
