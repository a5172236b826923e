#!/usr/bin/env bash
# Re-vendor the dashboard's third-party files from npm at their pinned versions and check
# them against the committed checksums (run only to update them; the files are committed,
# so the dashboard never fetches anything at run time).
set -euo pipefail
cd "$(dirname "$0")/.."
static=app/dashboard/static
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent htm@3.1.1 chart.js@4.6.1 >/dev/null && for f in *.tgz; do mkdir "${f%.tgz}" && tar xzf "$f" -C "${f%.tgz}"; done)
cp "$work/htm-3.1.1/package/preact/standalone.module.js" "$static/preact-htm.module.js"
cp "$work/chart.js-4.6.1/package/dist/chart.umd.min.js" "$static/chart.umd.min.js"
sha256sum -c <<'SUMS'
72284e8e9079c87817145df1110f74e8a2aa040b2fc384922e18dfcb46fc1fd7  app/dashboard/static/preact-htm.module.js
87364cc2b2a76a6684929e7d6b80b18a897794db38400caff1fcf1791c6925d2  app/dashboard/static/chart.umd.min.js
SUMS
