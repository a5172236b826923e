#!/usr/bin/env bash
# Quick start, command one: install, then grow the default seeds into 100 curated
# instructions with the embedded model (Gemma 3 270M on llama.cpp), and show them.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export SPROUT_DATA_DIR=${SPROUT_DATA_DIR:-$PWD/.sprout}
mkdir -p out
# One paper default is lowered for the small embedded model: a generation response is cut
# at 320 tokens instead of 1024. Gemma 3 270M sometimes rambles to the limit, and a cut
# response is dropped whole either way; seven new list items fit in well under 320.
exec .venv/bin/sprout generate --seeds seeds/default.jsonl --target "${TARGET:-100}" \
  --param max_tokens=320 --out out/demo-alpaca.json --format alpaca --examples 5 "$@"
