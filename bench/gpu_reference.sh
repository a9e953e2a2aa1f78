#!/usr/bin/env bash
# The reference implementation on a GPU, in one short run:
#   1. the reference tests on CUDA (they pick CUDA when torch sees one),
#   2. the benchmark on CUDA: the multi-round transfer against a
#      device-to-device copy of the same bytes (target: write path >= 80%).
#
# usage: bench/gpu_reference.sh [--dry-run]
#   --dry-run   run the same steps on the CPU with small sizes (checks the
#               script itself on a machine without a GPU)
# Environment: PY (python with torch; default .venv/bin/python, else python3),
#              OUT (folder for the JSON results; default /tmp),
#              BENCH_ARGS (more flags for the benchmark, e.g. "--block-size=4096 --pool=2"),
#              FORCE_SHIM=1 (use the symlink package map even where installed).
# Exit: 0 all passed and the target met; 1 a test failed; 4 target missed;
#       3 no CUDA device (without --dry-run).
set -euo pipefail
cd "$(dirname "$0")/.."

DRY=0
for arg in "$@"; do
  case "$arg" in
    --dry-run) DRY=1 ;;
    *) echo "gpu_reference.sh: unknown argument $arg (expected --dry-run)" >&2; exit 2 ;;
  esac
done

PY=${PY:-}
if [ -z "$PY" ]; then
  if [ -x .venv/bin/python ]; then PY=$PWD/.venv/bin/python; else PY=python3; fi
fi
OUT=${OUT:-/tmp}
mkdir -p "$OUT"

# Without an installed package, map the resumespec namespace onto the
# folders (pyproject's package-dir) through a folder of symlinks, and run
# from there (python puts the current folder first on sys.path, and the
# repository root holds a resumespec/ without the parts).
ROOT=$PWD
RUN_DIR=$ROOT
if [ "${FORCE_SHIM:-0}" = 1 ] || ! (cd /tmp && "$PY" -c "import resumespec.reference") 2>/dev/null; then
  SHIM=$(mktemp -d)
  mkdir -p "$SHIM/resumespec"
  for f in resumespec/*.py; do ln -s "$ROOT/$f" "$SHIM/resumespec/"; done
  for part in spec reference conformance; do ln -s "$ROOT/$part" "$SHIM/resumespec/$part"; done
  export PYTHONPATH="$SHIM:$ROOT${PYTHONPATH:+:$PYTHONPATH}"
  RUN_DIR=$SHIM
fi
cd "$RUN_DIR"

if [ "$DRY" = 1 ]; then
  DEVICE=cpu; SIZE=(--quick); TARGET=0.90
else
  DEVICE=cuda; SIZE=(); TARGET=0.80
  if ! "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
    echo "gpu_reference.sh: torch sees no CUDA device (use --dry-run on a CPU machine)" >&2
    exit 3
  fi
  "$PY" -c "import torch; print('GPU:', torch.cuda.get_device_name(0), 'torch', torch.__version__)"
fi

echo "== reference tests on $DEVICE" >&2
if ! timeout 300 "$PY" -m pytest -q -p no:cacheprovider "$ROOT/tests/test_reference.py" "$ROOT/tests/test_reference_parts.py"; then
  echo "gpu_reference.sh: reference tests failed on $DEVICE" >&2
  exit 1
fi

echo "== bench reference on $DEVICE" >&2
timeout 240 "$PY" -m bench reference --device="$DEVICE" "${SIZE[@]}" ${BENCH_ARGS:-} --json > "$OUT/bench_reference_$DEVICE.json"
cat "$OUT/bench_reference_$DEVICE.json"
"$PY" - "$OUT/bench_reference_$DEVICE.json" "$TARGET" <<'PYEOF'
import json, sys
# `python -m bench` prints a header line before the JSON object
text = open(sys.argv[1]).read()
res = json.loads(text[text.index("{"):])
target = float(sys.argv[2])
ratio = res["write_path_ratio"]
print(f"write path {ratio:.2f} of a plain {res['device']} copy (target {target:.2f}); "
      f"end to end {res['end_to_end_ratio']:.2f}; {res['per_round_overhead_us']:.0f} us/round; "
      f"peak {res['peak_ratio']:.2f}x the bytes that must exist")
sys.exit(0 if ratio >= target else 4)
PYEOF
