#!/usr/bin/env bash
# GPU check of solsa-ext on a machine with an NVIDIA GPU and no internet.
#
# Needs preinstalled: torch (CUDA build), pybind11, cmake, ninja, pytest, nvcc. Optional:
# snntorch / spikingjelly (the peers of the suite; skipped when absent).
#
#   bash benchmarks/gpu_check.sh            # from the repository root
#   OUT=/some/dir bash benchmarks/gpu_check.sh   # also writes summary.txt and the JSON files there
#
# Steps (each bounded by `timeout`: 210 + 110 + 60 + 90 s, so the whole check ends within 8 minutes):
#   1. build + install:  pip install --no-build-isolation --no-deps .   (SOLSA_BUILD_CUDA=1)
#   2. kernel tests:     pytest python_tests/test_cuda.py and the other kernel tests
#   3. bench_step.py --device cuda (fused vs eager reference, device copy bandwidth)
#   4. run.py --suite gpu --quick on two workloads
# and prints a compact summary (exit status: non-zero when the build or a test failed).
set -uo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python}"
OUTDIR="${OUT:-$(mktemp -d)}"
mkdir -p "$OUTDIR"
SUMMARY="$OUTDIR/summary.txt"
: > "$SUMMARY"
START=$(date +%s)
status=0

say() { echo "$*" | tee -a "$SUMMARY"; }
elapsed() { echo $(( $(date +%s) - START )); }

say "== solsa-ext GPU check $(date -u +%FT%TZ) git $(git rev-parse --short HEAD 2>/dev/null || echo none)"
"$PY" - <<'EOF' 2>&1 | tee -a "$SUMMARY"
import torch
print("torch", torch.__version__, "cuda", torch.version.cuda, "available", torch.cuda.is_available())
if torch.cuda.is_available():
    p = torch.cuda.get_device_properties(0)
    print("gpu", p.name, f"{p.total_memory/1e9:.0f} GB", "sm", f"{p.major}{p.minor}")
EOF
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee -a "$SUMMARY"

# 1. build (CUDA kernels required); the arch list defaults to this GPU's compute capability
ARCH=$("$PY" -c "import torch; p=torch.cuda.get_device_properties(0); print(f'{p.major}{p.minor}')" 2>/dev/null || echo "")
export SOLSA_BUILD_CUDA=1
[ -n "$ARCH" ] && export SOLSA_CUDA_ARCHS="${SOLSA_CUDA_ARCHS:-$ARCH}"
say "-- build (SOLSA_CUDA_ARCHS=${SOLSA_CUDA_ARCHS:-default})"
if timeout 210 "$PY" -m pip install --no-build-isolation --no-deps . > "$OUTDIR/build.log" 2>&1; then
  say "build: ok ($(elapsed) s)"
else
  say "build: FAILED (see $OUTDIR/build.log)"; tail -20 "$OUTDIR/build.log" | tee -a "$SUMMARY"; exit 1
fi
# pytest and the benchmarks run from the repository root and import the in-tree package:
# give it the freshly installed CUDA build of _C (found from outside the tree)
SO=$(cd / && "$PY" -c "import solsa_ext._C as c; print(c.__file__)" 2>/dev/null)
if [ -n "$SO" ] && [ -f "$SO" ]; then
  rm -f solsa_ext/_C*.so; cp "$SO" solsa_ext/
fi
"$PY" -c "import solsa_ext._C as c; print('cuda kernels built:', c.has_cuda())" 2>&1 | tee -a "$SUMMARY"

# 2. kernel tests
TESTS="python_tests/test_cuda.py"
for t in test_step.py test_learn.py test_spatial_error.py test_registration.py test_gradients.py; do
  [ -f "python_tests/$t" ] && TESTS="$TESTS python_tests/$t"
done
say "-- tests: $TESTS"
if timeout 110 "$PY" -m pytest $TESTS -q -x -m "not slow" -p no:cacheprovider > "$OUTDIR/tests.log" 2>&1; then
  say "tests: $(tail -1 "$OUTDIR/tests.log")"
else
  status=1; say "tests: FAILED: $(tail -1 "$OUTDIR/tests.log") (see $OUTDIR/tests.log)"
  grep -E "^(FAILED|ERROR)" "$OUTDIR/tests.log" | head -10 | tee -a "$SUMMARY"
fi

# 3. one SOLSA training sequence, fused vs eager, and the device bandwidth
say "-- bench_step.py --device cuda"
if timeout 60 "$PY" benchmarks/bench_step.py --device cuda --T 200 --eager-steps 50 --json "$OUTDIR/bench_step_cuda.json" \
     > "$OUTDIR/bench_step.log" 2>&1; then
  tail -1 "$OUTDIR/bench_step.log" | tee -a "$SUMMARY"
else
  status=1; say "bench_step: FAILED"; tail -15 "$OUTDIR/bench_step.log" | tee -a "$SUMMARY"
fi

# 4. the suite, quick, on GPU
say "-- run.py --suite gpu --quick"
if timeout 90 "$PY" benchmarks/run.py --suite gpu --quick --workloads BasicMotions,DVS128 \
     --json "$OUTDIR/suite_gpu.json" --md "$OUTDIR/suite_gpu.md" > "$OUTDIR/suite.log" 2>&1; then
  grep "^\[run.py\]" "$OUTDIR/suite.log" | tee -a "$SUMMARY"
else
  status=1; say "suite: FAILED"; tail -15 "$OUTDIR/suite.log" | tee -a "$SUMMARY"
fi

say "== done in $(elapsed) s, status $status; files in $OUTDIR"
exit $status
