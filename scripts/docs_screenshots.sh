#!/usr/bin/env bash
# Copy the browser tests' screenshots of the review and dataset pages (test-artifacts/screenshots/,
# written by tests/browser/test_dashboard_review.py) into docs/screenshots/, the ones the README's
# "Review" section shows, cut to a 64-colour palette where ImageMagick is installed.
set -euo pipefail
cd "$(dirname "$0")/.."
SRC=test-artifacts/screenshots
DST=docs/screenshots
NAMES="review-mode review-mode-390 review-bulk review-bulk-390 review-diff review-diff-390 dataset-create
dataset-create-390 dataset-recipe dataset-recipe-390 dataset-built dataset-built-390 build-job build-job-390 new-job-form new-job-form-390"
mkdir -p "$DST"
for name in $NAMES; do
  [ -f "$SRC/$name.png" ] || { echo "missing $SRC/$name.png: run the browser tests first" >&2; exit 1; }
  # a 64-colour palette where ImageMagick works; the file as it is otherwise
  convert "$SRC/$name.png" -strip -colors 64 "PNG8:$DST/$name.png" 2>/dev/null || cp "$SRC/$name.png" "$DST/$name.png"
done
du -ch "$DST"/*.png | tail -1
