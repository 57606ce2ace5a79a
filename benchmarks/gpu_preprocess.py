"""GPU kernels against the CPU path they reproduce: preprocessing and segmentation post-processing.

Run by benchmarks/gpu_check.sh on a lent GPU machine (needs pycuda and a CUDA device). For each case it
reports the median of ``--repeat`` runs after a warm-up, in milliseconds of wall time:

- preprocessing, frame → model input: the CPU ``Preprocessor`` against ``GpuPreprocessor`` with its host
  copies included (frame into the page-locked staging buffer, host→device copy, kernel, stream
  synchronised); ``gpu_device_ms`` is the same span timed by CUDA events on the stream.
- segmentation, ESPNet's real 21×384² logits → 1920×1080 class mask: the CPU ``softmax`` decoder (its
  ``nearest`` path) against
  ``GpuClassMap`` (argmax, resize, mask copied back to the host; the logits are already on the GPU, as an
  engine's output is).

Each GPU result is also compared with the CPU result (share of identical values).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import cv2
import numpy as np

from edge.backends.base import TensorInfo
from edge.bundle import Bundle, InputSpec, Thresholds
from edge.decoders.segmentation import SoftmaxSegmentation
from edge.demo import DEMO_VIDEO, find_assets
from edge.gpu.cuda import CudaContext
from edge.gpu.preprocess import GpuPreprocessor
from edge.gpu.segmentation import GpuClassMap
from edge.preprocess import Preprocessor

PREPROCESSING = [
    ("1280x720 -> 416x416 letterbox, BGR 0..255 (YOLOX)", (1280, 720),
     InputSpec("images", (1, 3, 416, 416), "nchw", "bgr", "float32", "letterbox", 114.0)),
    ("1920x1080 -> 640x640 letterbox-center, RGB /255", (1920, 1080),
     InputSpec("images", (1, 3, 640, 640), "nchw", "rgb", "float32", "letterbox-center", 114.0,
               (0.0,) * 3, (255.0,) * 3)),
]
ESPNET = InputSpec("image", (1, 3, 384, 384), "nchw", "rgb", "float32", "stretch", 0.0,
                   (123.675, 116.28, 103.53), (58.395, 57.12, 57.375))


def median_ms(run, repeat: int, warmup: int = 10) -> float:
    for _ in range(warmup):
        run()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return round(statistics.median(times) * 1e3, 4)


def frame_of_size(assets: Path, size: tuple[int, int]) -> np.ndarray:
    capture = cv2.VideoCapture(str(assets / DEMO_VIDEO))
    capture.set(cv2.CAP_PROP_POS_FRAMES, 300)
    ok, frame = capture.read()
    assert ok
    return cv2.resize(frame, size, interpolation=cv2.INTER_CUBIC)


def preprocessing(context: CudaContext, name: str, frame: np.ndarray, spec: InputSpec, repeat: int) -> dict:
    cuda = context.cuda
    cpu_out = np.zeros(spec.shape, np.float32)
    cpu = Preprocessor(spec)
    gpu = GpuPreprocessor(spec, context)
    device_out = cuda.mem_alloc(cpu_out.nbytes)
    stream = cuda.Stream()
    start, end = cuda.Event(), cuda.Event()

    def on_gpu():
        gpu(frame, device_out, stream)
        stream.synchronize()

    def on_gpu_timed_by_events():
        start.record(stream)
        gpu(frame, device_out, stream)
        end.record(stream)
        end.synchronize()
        return end.time_since(start)

    cpu_ms = median_ms(lambda: cpu(frame, cpu_out), repeat)
    gpu_ms = median_ms(on_gpu, repeat)
    device_ms = statistics.median(on_gpu_timed_by_events() for _ in range(repeat))
    gpu_out = np.empty_like(cpu_out)
    cuda.memcpy_dtoh(gpu_out, device_out)
    return {"case": name, "cpu_ms": cpu_ms, "gpu_ms": gpu_ms, "gpu_device_ms": round(device_ms, 4),
            "speedup": round(cpu_ms / gpu_ms, 1), "identical": float(np.mean(gpu_out == cpu_out)),
            "max_abs_diff": float(np.abs(gpu_out - cpu_out).max())}


def segmentation(context: CudaContext, assets: Path, repeat: int) -> dict:
    import onnxruntime as ort

    cuda = context.cuda
    frame = frame_of_size(assets, (1920, 1080))
    tensor = np.zeros(ESPNET.shape, np.float32)
    transform = Preprocessor(ESPNET)(frame, tensor)
    session = ort.InferenceSession(str(assets / "models/segmentation/espnetv2_s1.0_voc21_384x384.onnx"),
                                   providers=["CPUExecutionProvider"])
    logits = np.ascontiguousarray(session.run(None, {"image": tensor})[0][0])
    bundle = Bundle(Path("."), "espnetv2", "segmentation", "softmax", ESPNET, [], Thresholds(), {}, {},
                    decoder_args={"upsample": "nearest"})
    decoder = SoftmaxSegmentation(bundle, [TensorInfo("output", (1, 21, 384, 384), np.dtype(np.float32))])
    outputs = {"output": logits[None]}
    gpu, device_logits, stream = GpuClassMap(21, 384, 384, ESPNET, context), cuda.to_device(logits), cuda.Stream()

    def on_gpu():
        gpu(device_logits, transform, stream)
        stream.synchronize()

    cpu_ms = median_ms(lambda: decoder(outputs, transform), repeat)
    cpu_mask = decoder(outputs, transform).class_map
    gpu_ms = median_ms(on_gpu, repeat)
    mask = gpu(device_logits, transform, stream)
    stream.synchronize()
    return {"case": "ESPNet 21x384x384 logits -> 1920x1080 class mask", "cpu_ms": cpu_ms, "gpu_ms": gpu_ms,
            "speedup": round(cpu_ms / gpu_ms, 1), "identical": float(np.mean(mask == cpu_mask))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=200)
    parser.add_argument("--assets", help="assets folder (default: $EDGE_ASSETS or ../shared/assets)")
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    args = parser.parse_args()
    assets = find_assets(args.assets)
    context = CudaContext()
    try:
        device = context.device
        with context.active():  # this script calls pycuda itself, on this thread
            results = {"device": device.name(), "compute_capability": "{}.{}".format(*device.compute_capability()),
                       "repeat": args.repeat,
                       "preprocessing": [preprocessing(context, name, frame_of_size(assets, size), spec, args.repeat)
                                         for name, size, spec in PREPROCESSING],
                       "segmentation": segmentation(context, assets, args.repeat)}
    finally:
        context.close()
    if args.out:
        args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"{results['device']} (compute capability {results['compute_capability']}), median of {args.repeat}")
    print(f"{'case':<52} {'CPU ms':>8} {'GPU ms':>8} {'events':>8} {'x':>6} {'identical':>9}")
    for row in [*results["preprocessing"], results["segmentation"]]:
        print(f"{row['case']:<52} {row['cpu_ms']:>8.3f} {row['gpu_ms']:>8.3f} "
              f"{row.get('gpu_device_ms', float('nan')):>8.3f} {row['speedup']:>6.1f} {row['identical']:>9.5f}")


if __name__ == "__main__":
    main()
