"""``edge build-engine``: the bundle's ONNX → a TensorRT engine for this machine, named and tagged.

Runs on the device that will use the engine (plans are not portable, see :mod:`edge.engines`). What differs
between TensorRT releases is decided by :mod:`edge.backends.trt_api`; this module turns that recipe into
calls: parse with ``OnnxParser``, ``set_memory_pool_limit(WORKSPACE)`` (a small default: a Nano has little
memory), the precision flags, DLA with GPU fallback, an optimisation profile when an input is dynamic, an
INT8 calibrator for un-quantized ONNX (TensorRT < 11), a timing cache shared by all builds on this machine,
then ``build_serialized_network``.

It needs no PyTorch and imports nothing of ``compile/`` or ``calibration/``: ``edge replay``/``run`` rebuild a
stale engine with it, and the calibration frames of ``edge build-engine --calib`` arrive as a reader (see
:mod:`edge.backends.trt_calibrator`) that the command's handler makes.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from edge.backends.tensorrt import current_target, load_tensorrt
from edge.backends.trt_api import TrtApi, build_recipe
from edge.backends.trt_calibrator import CalibrationReader, make_entropy_calibrator
from edge.bundle import Bundle, sha256_file
from edge.engines import (
    EngineOptions,
    EngineTag,
    ProfileShape,
    Target,
    build_key,
    build_lock,
    engine_folder,
    fitting_engine,
    write_engine,
)
from edge.errors import BadInputError, EdgeError, UsageError
from edge.files import write_atomic

TIMING_CACHE_FOLDER = Path.home() / ".cache" / "edge" / "tensorrt"
LOG = logging.getLogger(__name__)


def build_engine(bundle: Bundle, options: EngineOptions, *, timing_cache: Path | None = None,
                 calibration: CalibrationReader | None = None, reuse: bool = False) -> Path:
    """Builds, writes and returns the engine file (``<bundle>/engines/<name>.engine`` plus its tag).

    ``calibration`` is read only when TensorRT calibrates (int8 without Q/DQ, TensorRT < 11): new frames
    replace the calibration cache of this ONNX; without them the cache of an earlier build of the same ONNX is
    reused. Builds of one engine are serialised by a lock (:func:`edge.engines.build_lock`): two processes
    starting on a 4-8 GB module would otherwise build at once, and interleaved writes would leave a tag whose
    plan sha256 is another build's. With ``reuse`` (the automatic builds at load), an engine that fits and
    was written while this process waited for the lock is returned instead of being built again.
    """
    trt, logger = load_tensorrt()
    target = current_target()
    onnx_sha256 = sha256_file(bundle.file("model"))
    folder = engine_folder(bundle)
    with build_lock(folder, build_key(onnx_sha256, target, options)):
        if reuse:
            built = fitting_engine(folder, onnx_sha256=onnx_sha256, target=target, options=options,
                                   input_shapes={bundle.input.name: bundle.input.shape})
            if built is not None:
                LOG.info("%s: engine %s was built by another process meanwhile", bundle.name, built.name)
                return built
        return _build(trt, logger, bundle, options, target, onnx_sha256, timing_cache, calibration)


def _build(trt: Any, logger: Any, bundle: Bundle, options: EngineOptions, target: Target, onnx_sha256: str,
           timing_cache: Path | None, calibration: CalibrationReader | None) -> Path:
    api = TrtApi.parse(trt.__version__)
    builder = trt.Builder(logger)
    network = builder.create_network(_bits(trt.NetworkDefinitionCreationFlag, api.network_flags))
    parser = trt.OnnxParser(network, logger)
    onnx = bundle.file("model")
    if not parser.parse_from_file(str(onnx)):
        errors = "; ".join(parser.get_error(i).desc() for i in range(parser.num_errors))
        raise BadInputError(f"{onnx}: TensorRT's ONNX parser rejects the model ({errors})")
    has_qdq, has_fp16 = _network_types(network, trt)
    recipe = build_recipe(api, options.precision, has_qdq=has_qdq, has_fp16_tensors=has_fp16,
                          dla_core=options.dla_core)
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, options.workspace_mib << 20)
    for flag in recipe.builder_flags:
        config.set_flag(getattr(trt.BuilderFlag, flag))
    if options.dla_core is not None:
        if options.dla_core >= builder.num_DLA_cores:
            raise UsageError(f"--dla-core {options.dla_core}: this device has {builder.num_DLA_cores} DLA core(s)")
        config.default_device_type = trt.DeviceType.DLA
        config.DLA_core = options.dla_core
    profile, shapes = _profile(builder, config, network, bundle)
    calibrator = calibration_cache = None
    if recipe.calibrate:
        # Named by the ONNX's sha256: a rebuild after the ONNX changed must not calibrate from the old one's table.
        calibration_cache = engine_folder(bundle) / f"{bundle.name}.{onnx_sha256[:12]}.calibration.cache"
        calibrator = config.int8_calibrator = _calibrator(bundle, calibration, calibration_cache)
        if profile is not None:
            config.set_calibration_profile(profile)
    cache_file = timing_cache or TIMING_CACHE_FOLDER / _timing_cache_name(target)
    _attach_timing_cache(config, cache_file)
    try:
        plan = builder.build_serialized_network(network, config)
    finally:
        if calibrator is not None:
            calibrator.release()  # a failed build must not leave the device buffer (or a context) behind
    if plan is None:
        raise EdgeError(f"{onnx}: TensorRT could not build an engine (its log above says why)")
    if config.get_timing_cache() is not None:
        _save_timing_cache(cache_file, bytes(config.get_timing_cache().serialize()))
    tag = EngineTag(bundle.name, onnx_sha256, target, options, shapes,
                    calibration_sha256=_sha256_if_written(calibration_cache))
    return write_engine(engine_folder(bundle), tag, bytes(plan))


def profile_range(name: str, network_shape: Sequence[int], bundle_shape: Sequence[int]) -> ProfileShape:
    """The (min, opt, max) shapes of one input: a dynamic batch (``-1``) runs from 1 up to the bundle's batch,
    any other dynamic dimension is fixed to the bundle's; a static input has min = opt = max."""
    if len(network_shape) != len(bundle_shape) or any(d not in (-1, b) for d, b in zip(network_shape, bundle_shape)):
        raise BadInputError(f"input '{name}': the bundle's shape {list(bundle_shape)} does not fit the ONNX's "
                            f"{list(network_shape)}")
    low = tuple(1 if i == 0 and d == -1 else b for i, (d, b) in enumerate(zip(network_shape, bundle_shape)))
    return ProfileShape(name, low, tuple(bundle_shape), tuple(bundle_shape))


def _profile(builder: Any, config: Any, network: Any, bundle: Bundle) -> tuple[Any, tuple[ProfileShape, ...]]:
    """The input shapes for the tag, and the optimisation profile added to ``config`` when an input is dynamic
    (``None`` when all are static)."""
    shapes, dynamic = [], []
    for index in range(network.num_inputs):
        tensor = network.get_input(index)
        if tensor.name != bundle.input.name:
            raise BadInputError(f"{bundle.file('model')}: input '{tensor.name}' is not the bundle's "
                                f"'{bundle.input.name}' (edge feeds one image input)")
        network_shape = tuple(int(d) for d in tensor.shape)
        shapes.append(profile_range(tensor.name, network_shape, bundle.input.shape))
        if -1 in network_shape:
            dynamic.append(shapes[-1])
    if not dynamic:
        return None, tuple(shapes)
    profile = builder.create_optimization_profile()
    for shape in dynamic:
        profile.set_shape(shape.name, shape.min, shape.opt, shape.max)
    config.add_optimization_profile(profile)
    return profile, tuple(shapes)


def _network_types(network: Any, trt: Any) -> tuple[bool, bool]:
    """Whether the parsed network has Q/DQ layers, and whether it holds fp16 tensors."""
    has_qdq = has_fp16 = False
    for index in range(network.num_layers):
        layer = network.get_layer(index)
        has_qdq |= layer.type in (trt.LayerType.QUANTIZE, trt.LayerType.DEQUANTIZE)
        has_fp16 |= any(layer.get_output(o).dtype == trt.DataType.HALF for o in range(layer.num_outputs))
    return has_qdq, has_fp16


def _calibrator(bundle: Bundle, reader: CalibrationReader | None, cache: Path) -> Any:
    """TensorRT's entropy calibrator over the reader's batches, or over the cache of an earlier build."""
    if reader is not None:
        cache.unlink(missing_ok=True)  # new calibration data: do not let an old cache stand in for it
    elif not cache.is_file():
        raise UsageError(f"int8: the ONNX has no Q/DQ nodes, so TensorRT calibrates it, and there is no calibration "
                         f"cache for this ONNX: build the engine with 'edge build-engine {bundle.root} --precision "
                         f"int8 --calib SOURCE'")
    cache.parent.mkdir(parents=True, exist_ok=True)
    return make_entropy_calibrator(reader if reader is not None else (), cache)


def _attach_timing_cache(config: Any, path: Path) -> None:
    """Attaches the timing cache saved in ``path``, or an empty one where that is missing or unusable (corrupt:
    ``create_timing_cache`` gives ``None``; from another device or TensorRT: ``set_timing_cache`` says
    ``False``). A bad cache costs this build its head start, never the build."""
    try:
        saved = path.read_bytes() if path.is_file() else b""
    except OSError as e:
        LOG.warning("%s: timing cache not read (%s)", path, e.strerror or e)
        saved = b""
    for data in (saved, b"") if saved else (b"",):
        cache = config.create_timing_cache(data)
        if cache is not None and config.set_timing_cache(cache, False):  # ignore_mismatch=False: not another GPU's
            return
        if data:
            LOG.warning("%s: timing cache unusable (corrupt, or made for another GPU or TensorRT): starting an "
                        "empty one", path)
        else:
            LOG.warning("%s: TensorRT refused an empty timing cache: building without one", path)


def _save_timing_cache(path: Path, data: bytes) -> None:
    """A cache that cannot be saved costs the next build time, not this build: warn and go on."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, data)
    except OSError as e:
        LOG.warning("%s: timing cache not saved (%s)", path, e.strerror or e)


def _sha256_if_written(path: Path | None) -> str | None:
    """The calibration cache is written by the calibrator during the build (when TensorRT calibrated)."""
    return sha256_file(path) if path is not None and path.is_file() else None


def _timing_cache_name(target: Target) -> str:
    return f"timing-trt{target.tensorrt}-sm{target.compute_capability.replace('.', '')}.cache"


def _bits(enum: Any, names: Sequence[str]) -> int:
    flags = 0
    for name in names:
        flags |= 1 << int(getattr(enum, name))
    return flags

