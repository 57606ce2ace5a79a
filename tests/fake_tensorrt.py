"""A strict stand-in for the ``tensorrt`` module of one release (8.5, 8.6, 10.x, 11.x): it rejects what the real
bindings reject, and records the calls edge makes.

**Members.** Every class and enum edge touches has exactly the members of the real pybind11 class of that
release, read from NVIDIA/TensorRT's ``python/src/infer/{pyCore,pyGraph,pyInt8,pyPlugin,pyFoundationalTypes}.cpp``
and ``python/src/parsers/pyOnnx.cpp`` at tags ``8.5.2``, ``v8.6.1``, ``v10.3.0`` and ``v11.0`` (every
``.def*("name"``/``.value("NAME"`` of the ``py::class_``/``py::enum_``, with base classes' and exported enum
values; ``tests/helpers/tensorrt_members.py`` wrote them to ``tests/tensorrt_members.json``). A name the
release does not have raises ``AttributeError``, on reading and on writing, as pybind11 does for a class
without ``py::dynamic_attr`` (so ``config.max_workspace_size = …`` fails on 10.x, ``BuilderFlag.FP16`` on
11.x). A real member the stand-in does not model raises ``NotImplementedError``, so a test never mistakes
"not modelled" for "not there". Python subclasses (a calibrator) keep their own attributes, as in pybind11.

**Types.** The calls edge makes check their argument types and raise ``TypeError`` as pybind11 does:
enums where an enum is declared (``set_flag("FP16")`` fails), an ``IInt8Calibrator`` for ``int8_calibrator``
(whose ``__init__`` must have run, pybind11's trampoline rule), ``int`` for ``DLA_core`` and for
``execute_async_v3``'s stream handle, a buffer for ``create_timing_cache`` and ``deserialize_cuda_engine``.

**Behaviour, from the C++ API's documentation.** ``build_serialized_network`` and ``deserialize_cuda_engine``
return ``None`` on failure (``fail_build``, a plan from elsewhere, a plugin not registered);
``create_timing_cache`` returns ``None`` for bytes that are not a cache and ``set_timing_cache`` returns
``False`` for a cache of another device; ``get_timing_cache`` is ``None`` until one is set; the standard
plugins (``EfficientNMS_TRT``…) are found only after ``init_libnvinfer_plugins``; an execution context reports
``-1`` for an output dimension that follows a dynamic input until that input's shape is set, and
``execute_async_v3`` fails until every dynamic input has one. ``nptype`` is the release's own
(``python/packaging/…/tensorrt/__init__.py``): ``TypeError`` for BF16/FP8/INT4/FP4, and 8.5's reads
``np.bool``, which NumPy 1.24–1.26 do not have. A build drives an attached INT8 calibrator as TensorRT does:
``read_calibration_cache``, else ``get_batch`` until ``None``, then ``write_calibration_cache``.

It builds nothing: a "plan" is placeholder bytes naming an engine description that only this stand-in reads.
"""

from __future__ import annotations

import importlib.machinery
import itertools
import json
import types
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

MEMBERS = json.loads(Path(__file__).with_name("tensorrt_members.json").read_text())
PLACEHOLDER_PLAN = b"placeholder bytes from a stand-in, not a TensorRT plan #"
CACHE_MAGIC = b"stand-in timing cache for "
Shape = tuple[int, ...]
_NETWORK_FLAGS = {"8": {"EXPLICIT_BATCH": 0, "EXPLICIT_PRECISION": 1}, "10": {"EXPLICIT_BATCH": 0, "STRONGLY_TYPED": 1},
                  "11": {"STRONGLY_TYPED": 0, "PREFER_JIT_PYTHON_PLUGINS": 1, "PREFER_AOT_PYTHON_PLUGINS": 2}}
_NUMPY = {"FLOAT": "float32", "HALF": "float16", "INT8": "int8", "INT32": "int32", "BOOL": "bool_", "UINT8": "uint8"}


def release_of(version: str) -> str:
    """The member list that describes ``version``: its own minor release for 8.x, the major's for 10 and 11."""
    major, minor = (int(part) for part in version.split(".")[:2])
    release = {(8, 5): "8.5.2", (8, 6): "8.6.1"}.get((major, minor)) or {10: "10.3.0", 11: "11.0"}.get(major)
    if release is None:
        raise ValueError(f"no member list for TensorRT {version}")
    return release


@dataclass
class Layer:
    type: str
    output_dtypes: tuple[str, ...] = ("FLOAT",)


@dataclass
class Tensor:
    """An engine I/O tensor. ``shape`` has ``-1`` where dynamic; an input's ``profile`` is (min, opt, max); an
    output's ``follows`` gives its shape from the input shapes set on a context (default: ``shape``, with a
    ``-1`` batch taken from the first input)."""

    name: str
    shape: Shape
    dtype: str = "FLOAT"
    profile: tuple[Shape, Shape, Shape] | None = None
    follows: Callable[[dict[str, Shape]], Shape] | None = None


@dataclass
class Network:
    """What the ONNX parser yields: inputs (name, shape), layers, the engine's outputs, the plugins its ops
    need, and ``run(addresses, shapes, stream_handle)`` that a built engine's ``execute_async_v3`` calls."""

    inputs: list[tuple[str, Shape]]
    layers: list[Layer] = field(default_factory=lambda: [Layer("CONVOLUTION")])
    outputs: list[Tensor] = field(default_factory=lambda: [Tensor("output", (-1, 10))])
    plugins: tuple[str, ...] = ()
    run: Callable[[dict[str, int], dict[str, Shape], int], None] | None = None


@dataclass
class EngineSpec:
    inputs: list[Tensor]
    outputs: list[Tensor]
    plugins: tuple[str, ...] = ()
    run: Callable[[dict[str, int], dict[str, Shape], int], None] | None = None

    @property
    def tensors(self) -> list[Tensor]:
        return self.inputs + self.outputs


def make_tensorrt(version: str, network: Network | None = None, parse_errors: tuple[str, ...] = ()) -> types.ModuleType:
    """A ``tensorrt`` stand-in of release ``version`` whose ONNX parser yields ``network``. Knobs on the module:
    ``fail_build``, ``calibration_fails_after`` (batches), ``device`` (the device timing caches are for),
    ``while_building`` (called inside ``build_serialized_network``, to hold a build open);
    ``plan(EngineSpec)`` makes a plan that its ``Runtime`` deserialises; ``calls`` records what edge called."""
    release = release_of(version)
    trt = types.ModuleType("tensorrt")
    trt.__spec__ = importlib.machinery.ModuleSpec("tensorrt", None)
    trt.__version__ = version
    trt.calls = []
    trt.fail_build, trt.calibration_fails_after, trt.device, trt.while_building = False, None, "sm87", None
    trt.plugins_loaded, trt.engines = False, {}
    trt.members = {name: frozenset(names.split()) for name, names in MEMBERS[release].items()}
    for name in ("BuilderFlag", "MemoryPoolType", "DeviceType", "LayerType", "DataType", "TensorIOMode"):
        setattr(trt, name, _enum(name, sorted(trt.members[name])))
    trt.NetworkDefinitionCreationFlag = _enum("NetworkDefinitionCreationFlag", _NETWORK_FLAGS[version.split(".")[0]])
    _add_module_functions(trt, release)
    from fake_tensorrt_builder import add_builder  # it builds on this module's machinery

    add_builder(trt, network, parse_errors)
    _add_runtime(trt)
    return trt


class _EnumValue:
    """A pybind11 enum value: ``name``, ``int()``, equal only to values of its own enum."""

    def __init__(self, name, value):
        self.name, self.value = name, value

    def __int__(self):
        return self.value

    def __eq__(self, other):
        return type(other) is type(self) and other.value == self.value

    def __hash__(self):
        return hash((type(self).__name__, self.value))

    def __repr__(self):
        return f"<{type(self).__name__}.{self.name}: {self.value}>"


def _enum(name, values):
    values = values if isinstance(values, dict) else {value: index for index, value in enumerate(values)}
    cls = type(name, (_EnumValue,), {})
    for value_name, number in values.items():
        setattr(cls, value_name, cls(value_name, number))
    return cls


class _Bound:
    """A pybind11 class of one release. On its own instances, reading or writing a name the release lacks raises
    AttributeError, and a declared attribute type is checked; a Python subclass's instances are left alone."""

    _name = ""
    _members: frozenset[str] = frozenset()
    _types: dict[str, tuple[type, bool]] = {}  # attribute → (type, None allowed)

    def __getattribute__(self, name):
        if not name.startswith("_") and "_name" in type(self).__dict__:
            _check_member(type(self), name)
        return object.__getattribute__(self, name)

    def __setattr__(self, name, value):
        cls = type(self)
        if not name.startswith("_") and "_name" in cls.__dict__:
            if name not in cls._members:  # a real member the stand-in does not model may still be written
                raise AttributeError(f"'tensorrt.tensorrt.{cls._name}' object has no attribute '{name}'")
            if name in cls._types:
                expected, optional = cls._types[name]
                if not (value is None and optional):
                    _check(value, expected, f"{cls._name}.{name}")
        object.__setattr__(self, name, value)


def _bind(trt, name, namespace, types_=None):
    """The stand-in class ``tensorrt.<name>`` of this release."""
    return type(name, (_Bound,), {**namespace, "_name": name, "_members": trt.members[name], "_types": types_ or {}})


def _check_member(cls, name):
    if name not in cls._members:
        raise AttributeError(f"'tensorrt.tensorrt.{cls._name}' object has no attribute '{name}'")
    if not any(name in c.__dict__ for c in cls.__mro__):
        raise NotImplementedError(f"the stand-in does not model {cls._name}.{name}: add it to tests/fake_tensorrt.py")


def _check(value, expected, where):
    """pybind11's TypeError for an argument of the wrong type (``bool`` is not an ``int`` there either)."""
    if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
        raise TypeError(f"{where}: incompatible function arguments: {type(value).__name__} is not "
                        f"{getattr(expected, '__name__', expected)}")


def _name_of(value):
    return value.name if isinstance(value, _EnumValue) else value


def _add_module_functions(trt, release):
    calls = trt.calls
    severity = _enum("Severity", ("INTERNAL_ERROR", "ERROR", "WARNING", "INFO", "VERBOSE"))

    def logger_init(self, min_severity=severity.WARNING):
        _check(min_severity, severity, "Logger(min_severity)")
        calls.append(("Logger",))
    trt.Logger = _bind(trt, "Logger", {"__init__": logger_init, **{n: getattr(severity, n) for n in (
        "INTERNAL_ERROR", "ERROR", "WARNING", "INFO", "VERBOSE")}})

    def init_libnvinfer_plugins(logger, namespace):
        _check(logger, trt.Logger, "init_libnvinfer_plugins(logger)")
        _check(namespace, str, "init_libnvinfer_plugins(namespace)")
        calls.append(("init_libnvinfer_plugins", namespace))
        trt.plugins_loaded = True
        return True
    creators = property(lambda self: ["EfficientNMS_TRT"] if trt.plugins_loaded else [])
    registry = _bind(trt, "IPluginRegistry", {"plugin_creator_list": creators, "all_creators": creators})()
    trt.init_libnvinfer_plugins, trt.get_plugin_registry = init_libnvinfer_plugins, lambda: registry

    def nptype(trt_type):
        mapping = {getattr(trt.DataType, k): v for k, v in _NUMPY.items()}
        if release == "8.5.2" and not hasattr(np, "bool"):  # 8.5's mapping names np.bool
            raise AttributeError("module 'numpy' has no attribute 'bool'")
        if release != "8.5.2":
            mapping[trt.DataType.INT64] = "int64"
        if trt_type in mapping:
            return getattr(np, mapping[trt_type])
        raise TypeError("Could not resolve TensorRT datatype to an equivalent numpy datatype.")
    trt.nptype = nptype

    plans = itertools.count()

    def plan(spec: EngineSpec) -> bytes:
        key = next(plans)
        trt.engines[key] = spec
        return PLACEHOLDER_PLAN + str(key).encode()
    trt.plan = plan


def _add_runtime(trt):
    calls = trt.calls

    class Engine:
        num_io_tensors = property(lambda self: len(self._spec.tensors))

        def get_tensor_name(self, index):
            _check(index, int, "get_tensor_name(index)")
            return self._spec.tensors[index].name

        def get_tensor_mode(self, name):
            is_input = any(t.name == name for t in self._spec.inputs)
            return trt.TensorIOMode.INPUT if is_input else trt.TensorIOMode.OUTPUT

        def get_tensor_shape(self, name):
            return tuple(self._tensor(name).shape)

        def get_tensor_dtype(self, name):
            return getattr(trt.DataType, self._tensor(name).dtype)

        def get_tensor_profile_shape(self, name, profile_index):
            _check(profile_index, int, "get_tensor_profile_shape(profile_index)")
            return [tuple(shape) for shape in self._tensor(name).profile]

        def create_execution_context(self):
            context = Context()
            context._engine, context._shapes, context._addresses = self, {}, {}
            return context

        def _tensor(self, name):
            _check(name, str, "tensor name")
            return next(t for t in self._spec.tensors if t.name == name)
    Engine = trt.ICudaEngine = _bind(trt, "ICudaEngine", dict(Engine.__dict__))

    class Context:
        def set_input_shape(self, name, shape):
            _check(shape, (tuple, list), "set_input_shape(shape)")
            low, _, high = self._engine._tensor(name).profile
            if len(shape) != len(low) or not all(lo <= s <= hi for lo, s, hi in zip(low, shape, high)):
                return False
            self._shapes[name] = tuple(int(d) for d in shape)
            return True

        def set_tensor_address(self, name, memory):
            _check(memory, int, "set_tensor_address(memory)")
            self._engine._tensor(name)
            self._addresses[name] = memory
            return True

        def get_tensor_shape(self, name):
            spec, tensor = self._engine._spec, self._engine._tensor(name)
            inputs = {t.name: self._shapes.get(t.name, tuple(t.shape)) for t in spec.inputs}
            if name in inputs:
                return inputs[name]
            if any(-1 in shape for shape in inputs.values()):
                return tuple(tensor.shape)  # unresolved until the dynamic inputs have shapes
            if tensor.follows is not None:
                return tuple(tensor.follows(inputs))
            batch = next(iter(inputs.values()))[0]
            return tuple(batch if i == 0 and d == -1 else d for i, d in enumerate(tensor.shape))

        def execute_async_v3(self, stream_handle):
            _check(stream_handle, int, "execute_async_v3(stream_handle)")
            spec = self._engine._spec
            unset = [t.name for t in spec.inputs if -1 in self.get_tensor_shape(t.name)]
            if unset or len(self._addresses) < len(spec.tensors):
                return False  # TensorRT logs which shape or address is missing
            if spec.run is not None:
                spec.run(dict(self._addresses), {t.name: self.get_tensor_shape(t.name) for t in spec.tensors},
                         stream_handle)
            return True
    Context = trt.IExecutionContext = _bind(trt, "IExecutionContext", dict(Context.__dict__))

    class Runtime:
        DLA_core = -1

        def __init__(self, logger):
            _check(logger, trt.Logger, "Runtime(logger)")
            calls.append(("Runtime",))

        def deserialize_cuda_engine(self, serialized_engine):
            data = bytes(memoryview(serialized_engine))  # TypeError for anything but a buffer
            calls.append(("deserialize_cuda_engine",))
            spec = trt.engines.get(int(data[len(PLACEHOLDER_PLAN):])) if data.startswith(PLACEHOLDER_PLAN) else None
            if spec is None or spec.plugins and not trt.plugins_loaded:
                return None  # TensorRT logs why ("getPluginCreator could not find plugin …") and returns nullptr
            engine = Engine()
            engine._spec = spec
            return engine
    trt.Runtime = _bind(trt, "Runtime", dict(Runtime.__dict__), {"DLA_core": (int, False)})


def load_engine(trt, spec: EngineSpec):
    """The stand-in's ``ICudaEngine`` for ``spec``, through its own plan and ``Runtime`` (plugins registered
    first where the spec needs them)."""
    if spec.plugins:
        trt.init_libnvinfer_plugins(trt.Logger(), "")
    return trt.Runtime(trt.Logger()).deserialize_cuda_engine(trt.plan(spec))
