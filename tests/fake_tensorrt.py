"""A recording stand-in for the parts of the ``tensorrt`` module that edge's engine builder calls.

It exists to check *which calls* the builder makes for each TensorRT release: every call is appended to
``module.calls``. The members a release removed are missing here too (11.x: ``BuilderFlag.FP16``/``INT8``,
``NetworkDefinitionCreationFlag.EXPLICIT_BATCH``, ``IBuilderConfig.int8_calibrator``,
``IInt8EntropyCalibrator2``), so a call the release would reject fails here as well. It builds nothing:
``build_serialized_network`` returns placeholder bytes, which are not a TensorRT plan.
"""

from __future__ import annotations

import importlib.machinery
import types
from dataclasses import dataclass, field

PLACEHOLDER_PLAN = b"placeholder bytes from a stand-in, not a TensorRT plan"


@dataclass
class Layer:
    type: str
    output_dtypes: tuple[str, ...] = ("FLOAT",)

    @property
    def num_outputs(self):
        return len(self.output_dtypes)

    def get_output(self, index):
        return types.SimpleNamespace(dtype=self.output_dtypes[index])


@dataclass
class Network:
    inputs: list[tuple[str, tuple[int, ...]]]
    layers: list[Layer] = field(default_factory=lambda: [Layer("CONVOLUTION")])

    @property
    def num_inputs(self):
        return len(self.inputs)

    def get_input(self, index):
        name, shape = self.inputs[index]
        return types.SimpleNamespace(name=name, shape=shape)

    @property
    def num_layers(self):
        return len(self.layers)

    def get_layer(self, index):
        return self.layers[index]


def make_tensorrt(version: str, network: Network, parse_errors: tuple[str, ...] = ()) -> types.ModuleType:
    """A ``tensorrt`` stand-in of release ``version`` whose ONNX parser yields ``network``."""
    module = types.ModuleType("tensorrt")
    module.__spec__ = importlib.machinery.ModuleSpec("tensorrt", None)
    module.__version__ = version
    calls: list[tuple] = []
    module.calls = calls
    major = int(version.split(".")[0])

    def recorder(name):
        def call(self, *args):
            calls.append((name, *args))
            return None
        return call

    module.Logger = type("Logger", (), {"WARNING": "WARNING", "__init__": recorder("Logger")})
    flags = {"GPU_FALLBACK": "GPU_FALLBACK"} | ({"FP16": "FP16", "INT8": "INT8"} if major < 11 else {})
    module.BuilderFlag = types.SimpleNamespace(**flags)
    module.NetworkDefinitionCreationFlag = types.SimpleNamespace(
        **({"EXPLICIT_BATCH": 0} if major < 11 else {}), STRONGLY_TYPED=1)
    module.MemoryPoolType = types.SimpleNamespace(WORKSPACE="WORKSPACE")
    module.DeviceType = types.SimpleNamespace(GPU="GPU", DLA="DLA")
    module.LayerType = types.SimpleNamespace(QUANTIZE="QUANTIZE", DEQUANTIZE="DEQUANTIZE", CONVOLUTION="CONVOLUTION")
    module.DataType = types.SimpleNamespace(FLOAT="FLOAT", HALF="HALF")

    class TimingCache:
        def __init__(self, data):
            self.data = data

        def serialize(self):
            return self.data + b"+timings"

    class Profile:
        set_shape = recorder("profile.set_shape")

    class Config:
        set_memory_pool_limit = recorder("set_memory_pool_limit")
        set_flag = recorder("set_flag")
        add_optimization_profile = recorder("add_optimization_profile")

        def __setattr__(self, name, value):
            if name == "int8_calibrator" and major >= 11:
                raise AttributeError("IBuilderConfig.int8_calibrator was removed in TensorRT 11")
            calls.append((f"config.{name} =", value))
            object.__setattr__(self, name, value)

        def create_timing_cache(self, data):
            calls.append(("create_timing_cache", bytes(data)))
            object.__setattr__(self, "_cache", TimingCache(bytes(data)))
            return self._cache

        def set_timing_cache(self, cache, ignore_mismatch):
            calls.append(("set_timing_cache", cache is self._cache, ignore_mismatch))
            return True

        def get_timing_cache(self):
            return self._cache

    if major < 11:
        Config.set_calibration_profile = recorder("set_calibration_profile")

        class IInt8EntropyCalibrator2:
            """The pybind11 base class, whose ``__init__`` the docs require a subclass to call: recorded."""

            __init__ = recorder("IInt8EntropyCalibrator2.__init__")

        module.IInt8EntropyCalibrator2 = IInt8EntropyCalibrator2

    class Builder:
        num_DLA_cores = 2

        def __init__(self, logger):
            calls.append(("Builder",))

        def create_network(self, flags):
            calls.append(("create_network", flags))
            return network

        create_builder_config = staticmethod(lambda: Config())
        create_optimization_profile = staticmethod(lambda: Profile())

        def build_serialized_network(self, net, config):
            calls.append(("build_serialized_network", net is network))
            return PLACEHOLDER_PLAN

    class OnnxParser:
        def __init__(self, net, logger):
            assert net is network
            self.num_errors = len(parse_errors)

        def parse_from_file(self, path):
            calls.append(("parse_from_file", path))
            return not parse_errors

        def get_error(self, index):
            return types.SimpleNamespace(desc=lambda: parse_errors[index])

    module.Builder, module.OnnxParser = Builder, OnnxParser
    return module
