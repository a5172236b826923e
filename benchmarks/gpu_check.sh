#!/usr/bin/env bash
# The trainer's GPU device check: one command on a lent GPU machine, no internet, < 5 minutes.
#
#   scripts/gpu_wheels.sh        # first, on a machine with PyPI: fills .whl/ (about 23 MB)
#   benchmarks/gpu_check.sh      # then, on the GPU machine, from the repository root
#
# Installs the wheels from .whl/ into a temporary --target folder (nothing is fetched),
# puts it on PYTHONPATH, checks that packed rows give every document the log-probabilities
# it has alone on this GPU (per-document masks from restarting position ids, with Liger's
# kernels when installed; a failure is printed and makes the command exit 1), then
# runs benchmarks/sft_throughput.py on the GPU only, bounded in time, and prints its table:
# ceiling loop, trainer, trainer + packing, for full fine-tuning and LoRA of a 1.24B
# Llama-shaped model (tokens/s, MFU, peak memory, padding waste). Extra arguments go to the
# benchmark (e.g. --gpu-steps 10 --methods full). Figures also land in $OUT (or /tmp) as JSON.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3}
BUDGET_S=${GPU_CHECK_BUDGET_S:-250}
started=$(date +%s)

if ! ls .whl/*.whl >/dev/null 2>&1; then
  echo "error: no wheels in .whl/; run scripts/gpu_wheels.sh on a machine with PyPI, and carry .whl along" >&2
  exit 2
fi
SITE=$(mktemp -d /tmp/sprout-site.XXXXXX)
trap 'rm -rf "$SITE"' EXIT
"$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" .whl/*.whl
export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1
"$PY" - <<'PY'
import importlib.metadata as md
try:
    import torch
except ImportError:
    raise SystemExit("error: this Python has no torch; the GPU machine's python3 has it (PYTHON=...)") from None
if not torch.cuda.is_available():
    raise SystemExit("error: no CUDA device")
names = ("torch", "transformers", "trl", "peft", "accelerate", "datasets", "liger_kernel")
def version(name):
    try:
        return md.version(name)
    except md.PackageNotFoundError:
        return "missing"
print(torch.cuda.get_device_name(), "|", ", ".join(f"{n} {version(n)}" for n in names))
PY
echo "install and imports: $(( $(date +%s) - started )) s"

out_dir=${OUT:-/tmp}
left=$(( BUDGET_S - ($(date +%s) - started) ))
# SIGINT first: Python unwinds and prints what it has; KILL 15 s later if it does not stop
timeout --signal=INT --kill-after=15 "$left" \
  "$PY" benchmarks/sft_throughput.py --skip-cpu --repeats 1 --gpu-steps 15 --warmup 3 --check-packing \
  --json "$out_dir/sft_throughput.json" "$@"
echo "device check: $(( $(date +%s) - started )) s in all"
