#!/usr/bin/env bash
# The GPU check, run ON a lent GPU machine from the repository root with .gpu carried (fill it here first with
# benchmarks/gpu_prepare.sh; see DEVELOPERS.md, "GPU check"). It builds pycuda from its source release (about
# 90 s), runs the gpu-marked tests (kernels against the CPU path, the backend's CUDA memory handling) and the
# kernel compile test, then times the kernels against the CPU path. Everything lands in $OUT.
# There is no TensorRT on that machine: TensorRT's build and inference are not exercised here.
set -uo pipefail
OUT=${OUT:-out/gpu-check}
SITE=/tmp/site
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 CUDA_ROOT=${CUDA_ROOT:-/usr/local/cuda}
python3 -m pip install -q --no-index --no-deps --no-compile --target "$SITE" .gpu/*.whl || exit 3
export PYTHONPATH="$SITE:$PWD" EDGE_ASSETS="$PWD/.gpu/assets"
mkdir -p /tmp/pc && tar xzf .gpu/pycuda-*.tar.gz -C /tmp/pc
(cd /tmp/pc/pycuda-* && python3 configure.py --cuda-root="$CUDA_ROOT" >/dev/null &&
 MAKEFLAGS=-j16 python3 -m pip install -q --no-index --no-deps --no-build-isolation --target "$SITE" .) \
    >"$OUT/pycuda-build.log" 2>&1 || { tail -20 "$OUT/pycuda-build.log"; exit 3; }
{ nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem --format=csv; "$CUDA_ROOT/bin/nvcc" --version; \
  python3 -c "import pycuda, numpy, cv2; print('pycuda', pycuda.VERSION_TEXT, 'numpy', numpy.__version__, 'opencv', cv2.__version__)"; \
} >"$OUT/device.txt" 2>&1
cat "$OUT/device.txt"
python3 -m pytest -p no:cacheprovider -rs -v -m gpu tests 2>&1 | tee "$OUT/pytest-gpu.txt"
tests=${PIPESTATUS[0]}
python3 -m pytest -p no:cacheprovider -rs -q tests/test_gpu_kernels_compile.py 2>&1 | tee "$OUT/pytest-compile.txt"
compile=${PIPESTATUS[0]}
python3 benchmarks/gpu_preprocess.py --out "$OUT/gpu_benchmark.json" 2>&1 | tee "$OUT/gpu_benchmark.txt"
bench=${PIPESTATUS[0]}
echo "gpu tests: exit $tests, compile test: exit $compile, benchmark: exit $bench"
[ "$tests" -eq 0 ] && [ "$compile" -eq 0 ] && [ "$bench" -eq 0 ]
