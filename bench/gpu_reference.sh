#!/usr/bin/env bash
# The reference implementation on a GPU, in one short run:
#   1. the reference tests on CUDA (they pick CUDA when torch sees one; they
#      include the check that batched and per-block landing give the same run),
#   2. the benchmark on CUDA at 1024-token blocks (pool 8, cap 4) and at
#      4096-token blocks (pool 2, cap 1): both landing paths (one copy per
#      block write, and batched) side by side against a device-to-device copy
#      of the same bytes (target: batched write path >= 80% of the copy).
#
# usage: bench/gpu_reference.sh [--dry-run] [--bench-only]
#   --dry-run     run the same steps on the CPU with small sizes (checks the
#                 script itself on a machine without a GPU)
#   --bench-only  skip the tests (a rerun when device time is short)
# Environment: PY (python with torch; default .venv/bin/python, else python3),
#              OUT (folder for the JSON results; default /tmp),
#              BENCH_ARGS (more flags for both benchmark runs, e.g. "--repeats=3"),
#              FORCE_SHIM=1 (use the symlink package map even where installed).
# Exit: 0 all passed and the target met at both block sizes; 1 a test failed;
#       4 target missed; 3 no CUDA device (without --dry-run).
set -euo pipefail
cd "$(dirname "$0")/.."

DRY=0
TESTS=1
for arg in "$@"; do
  case "$arg" in
    --dry-run) DRY=1 ;;
    --bench-only) TESTS=0 ;;
    *) echo "gpu_reference.sh: unknown argument $arg (expected --dry-run or --bench-only)" >&2; exit 2 ;;
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
  DEVICE=cpu; TARGET=0.90
  SMALL=(--tokens=2048 --hidden=256 --block-size=128 --pool=8 --cap=4 --repeats=1)
  LARGE=(--tokens=2048 --hidden=256 --block-size=512 --pool=2 --cap=1 --repeats=1)
else
  DEVICE=cuda; TARGET=0.80
  SMALL=(--block-size=1024 --pool=8 --cap=4)
  LARGE=(--block-size=4096 --pool=2 --cap=1)
  if ! "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
    echo "gpu_reference.sh: torch sees no CUDA device (use --dry-run on a CPU machine)" >&2
    exit 3
  fi
  "$PY" -c "import torch; print('GPU:', torch.cuda.get_device_name(0), 'torch', torch.__version__)"
fi

if [ "$TESTS" = 1 ]; then
  echo "== reference tests on $DEVICE" >&2
  if ! timeout 300 "$PY" -m pytest -q -p no:cacheprovider "$ROOT/tests/test_reference.py" "$ROOT/tests/test_reference_parts.py"; then
    echo "gpu_reference.sh: reference tests failed on $DEVICE" >&2
    exit 1
  fi
fi

RESULTS=()
for size in small large; do
  if [ "$size" = small ]; then ARGS=("${SMALL[@]}"); else ARGS=("${LARGE[@]}"); fi
  echo "== bench reference on $DEVICE: ${ARGS[*]}" >&2
  json="$OUT/bench_reference_${DEVICE}_$size.json"
  timeout 240 "$PY" -m bench reference --device="$DEVICE" "${ARGS[@]}" ${BENCH_ARGS:-} --json > "$json"
  RESULTS+=("$json")
done

"$PY" - "$TARGET" "${RESULTS[@]}" <<'PYEOF'
import json, sys
target = float(sys.argv[1])
met = True
print(f"{'block':>6} {'device':>8} {'plain copy':>11} {'per block: write path':>22} "
      f"{'batched: write path':>20} {'in run per block/batched':>25} {'ops':>7}")
for path in sys.argv[2:]:
    text = open(path).read()  # `python -m bench` prints a header line before the JSON object
    res = json.loads(text[text.index("{"):])
    pb, b = res["paths"]["per_block"], res["paths"]["batched"]
    print(f"{res['block_size']:>6} {res['device']:>8} {res['plain_copy_s'] * 1e3:>8.4f} ms "
          f"{pb['write_path_s'] * 1e3:>11.4f} ms ({pb['write_path_ratio']:.2f}) "
          f"{b['write_path_s'] * 1e3:>9.4f} ms ({b['write_path_ratio']:.2f}) "
          f"{pb['in_run_ratio']:>17.2f} / {b['in_run_ratio']:.2f} "
          f"{pb['copy_ops']:>3}/{b['copy_ops']}")
    print(f"       end to end {pb['end_to_end_ratio']:.2f} / {b['end_to_end_ratio']:.2f} of one copy; "
          f"{res['per_round_overhead_us']:.0f} us/round; peak {res['peak_ratio']:.2f}x the bytes that must exist")
    met = met and b["write_path_ratio"] >= target
print(f"batched write path >= {target:.2f} of a plain copy at every block size: {'met' if met else 'NOT met'}")
sys.exit(0 if met else 4)
PYEOF
