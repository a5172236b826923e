#!/usr/bin/env bash
# Wheels the GPU device check needs, for a machine without internet (run here, with PyPI).
#
#   scripts/gpu_wheels.sh            # fills .whl/ (gitignored), then: benchmarks/gpu_check.sh there
#
# The lent GPU machines have Python 3.12, torch (CUDA), transformers 5.17, accelerate, peft,
# pyarrow, pandas and xxhash, but not TRL, datasets, pydantic, rapidfuzz, rouge-score, nltk
# or liger-kernel. This downloads cp312 manylinux x86-64 wheels of the versions Sprout is
# tested with (no dependencies pulled: each one is named), builds rouge-score's wheel (it
# ships as an sdist only), and checks that the folder stays small enough to travel.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-}
if [ -z "$PY" ]; then
  if [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY=python3; fi
fi
LIMIT_MB=${GPU_WHEELS_LIMIT_MB:-60}
WHEELS=(
  trl==1.16.0 transformers==5.23.0 peft==0.21.2 datasets==5.2.0 fsspec==2026.9.0
  dill==0.4.1 multiprocess==0.70.19
  pydantic==2.14.4 pydantic-core==2.50.5 annotated-types==0.8.0 typing-inspection==0.4.5
  typing-extensions==4.16.0
  rapidfuzz==3.14.6 nltk==3.10.4
  liger-kernel==0.8.5
)

rm -rf .whl
mkdir -p .whl
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d .whl "${WHEELS[@]}"
# rouge-score is published as an sdist only; its wheel is pure Python, so one built here runs there
"$PY" -m pip wheel -q --no-deps --no-cache-dir -w .whl rouge-score==0.1.2

ls -1 .whl
size_kb=$(du -sk .whl | cut -f1)
echo "$(ls .whl/*.whl | wc -l) wheels, $((size_kb / 1024)) MB in .whl/"
if [ "$size_kb" -gt $((LIMIT_MB * 1024)) ]; then
  echo "error: .whl/ is over ${LIMIT_MB} MB; the working tree that travels to the GPU machine is limited" >&2
  exit 1
fi
