#!/usr/bin/env bash
# Run HERE (a development machine with network), once, before benchmarks/gpu_check.sh runs on a lent GPU
# machine. That machine has no network and does not receive ../shared, so this fills .gpu/ (git-ignored, sent
# with `carry: [".gpu"]`) with pycuda's source release and its pure-Python dependencies (from
# ../shared/device/wheels-cp312), jsonschema's wheels for its Python 3.12 (edge's bundles need them; the
# machine lacks them), and the three assets the GPU tests read.
set -euo pipefail
cd "$(dirname "$0")/.."
SHARED=${SHARED:-../shared}
PYTHON=${PYTHON:-python3}
mkdir -p .gpu/assets/videos .gpu/assets/models/segmentation
cp "$SHARED"/device/wheels-cp312/* .gpu/
"$PYTHON" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .gpu \
    jsonschema==4.26.0 jsonschema-specifications==2025.9.1 referencing==0.37.0 rpds-py==2026.9.1
cp "$SHARED"/assets/MANIFEST.md .gpu/assets/
cp "$SHARED"/assets/videos/one-by-one-person-detection.mp4 .gpu/assets/videos/
cp "$SHARED"/assets/models/segmentation/espnetv2_s1.0_voc21_384x384.onnx .gpu/assets/models/segmentation/
du -sh .gpu
