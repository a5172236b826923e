#!/usr/bin/env bash
# Make sure the dashboard's browser tests can run: Debian's Chromium (Playwright drives it;
# Playwright's own browser download needs a host the tests cannot reach) and the Playwright
# package in .venv. Does nothing when both are there.
set -euo pipefail
cd "$(dirname "$0")/.."
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

if [ ! -x /usr/bin/chromium ]; then
  echo "==> installing chromium (Debian package, for the dashboard's browser tests)"
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq chromium >/dev/null
fi
if ! .venv/bin/python -c "import playwright" 2>/dev/null; then
  echo "==> installing playwright (Python package)"
  .venv/bin/python -m pip install -q "playwright>=1.45"
fi
