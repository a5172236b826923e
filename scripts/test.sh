#!/usr/bin/env bash
# Quick start, command two: install, make sure Redis and PostgreSQL run (and Chromium for the
# dashboard's browser tests is there), lint, run every test.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/services.sh
scripts/browser.sh
.venv/bin/ruff check .
exec .venv/bin/python -m pytest "$@"
