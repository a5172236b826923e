#!/usr/bin/env bash
# Quick start, command two: install, make sure Redis and PostgreSQL run (and Chromium for the
# dashboard's browser tests is there), lint, type-check the core, build the docs site, run every test.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/services.sh
scripts/browser.sh
.venv/bin/ruff check .
.venv/bin/mypy   # app/core, strict, every module
NO_MKDOCS_2_WARNING=1 .venv/bin/mkdocs build --strict --quiet   # the docs site: no broken link, no page outside the nav
exec .venv/bin/python -m pytest "$@"
