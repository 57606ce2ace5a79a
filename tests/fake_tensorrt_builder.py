"""The builder side of the TensorRT stand-in (tests/fake_tensorrt.py, whose docstring says what it keeps of the
real bindings): ``Builder``, ``IBuilderConfig`` with its timing cache and calibrator, ``OnnxParser``, and the
parsed network."""

from __future__ import annotations

import types

from fake_tensorrt import CACHE_MAGIC, EngineSpec, Tensor, _bind, _Bound, _check, _name_of


def add_builder(trt, network, parse_errors):
    """``Builder``, ``IBuilderConfig``, ``OnnxParser`` and the network they work on, added to ``trt``."""
    calls = trt.calls

    def serialize(self):
        return memoryview(CACHE_MAGIC + trt.device.encode() + b"|" + self._data.partition(b"|")[2] + b"+timings")
    TimingCache = trt.ITimingCache = _bind(trt, "ITimingCache", {"serialize": serialize})

    def data_type(name):
        return getattr(trt.DataType, name)
    Tensor_ = trt.ITensor = _bind(trt, "ITensor", {"name": property(lambda self: self._spec[0]),
                                                    "shape": property(lambda self: tuple(self._spec[1])),
                                                    "dtype": property(lambda self: data_type(self._spec[2]))})

    def tensor(name, shape, dtype="FLOAT"):
        made = Tensor_()
        made._spec = (name, shape, dtype)
        return made
    Layer_ = trt.ILayer = _bind(trt, "ILayer", {
        "type": property(lambda self: getattr(trt.LayerType, self._spec.type)),
        "num_outputs": property(lambda self: len(self._spec.output_dtypes)),
        "get_output": lambda self, index: tensor("", (), self._spec.output_dtypes[index])})

    def layer(spec):
        made = Layer_()
        made._spec = spec
        return made
    Network_ = trt.INetworkDefinition = _bind(trt, "INetworkDefinition", {
        "num_inputs": property(lambda self: len(network.inputs)),
        "get_input": lambda self, index: tensor(*network.inputs[index]),
        "num_layers": property(lambda self: len(network.layers)),
        "get_layer": lambda self, index: layer(network.layers[index])})
    parsed = Network_()

    def set_shape(self, input, min, opt, max):  # noqa: A002 (TensorRT's keyword names)
        calls.append(("profile.set_shape", input, tuple(min), tuple(opt), tuple(max)))
        self._shapes = {**getattr(self, "_shapes", {}), input: (tuple(min), tuple(opt), tuple(max))}
    Profile = trt.IOptimizationProfile = _bind(trt, "IOptimizationProfile", {"set_shape": set_shape})
    Config = trt.IBuilderConfig = _bind(trt, "IBuilderConfig", _config_namespace(trt, TimingCache, Profile),
                                        _config_types(trt))
    trt.Builder = _bind(trt, "Builder", _builder_namespace(trt, network, parsed, Network_, Config, Profile))

    class OnnxParser:
        def __init__(self, network_, logger):
            _check(network_, Network_, "OnnxParser(network)")
            _check(logger, trt.Logger, "OnnxParser(logger)")
            self._errors = list(parse_errors)

        num_errors = property(lambda self: len(self._errors))

        def parse_from_file(self, model):
            _check(model, str, "parse_from_file(model)")
            calls.append(("parse_from_file", model))
            self._errors += [f"getPluginCreator() could not find Plugin {name} version 1" for name in network.plugins
                             if not trt.plugins_loaded]
            return not self._errors

        def get_error(self, index):
            return types.SimpleNamespace(desc=lambda: self._errors[index])
    trt.OnnxParser = _bind(trt, "OnnxParser", dict(OnnxParser.__dict__))


def _config_types(trt):
    types_ = {"DLA_core": (int, False), "default_device_type": (trt.DeviceType, False)}
    if "int8_calibrator" in trt.members["IBuilderConfig"]:
        def calibrator_init(self):
            trt.calls.append(("IInt8EntropyCalibrator2.__init__",))
            self._initialised = True
        trt.IInt8EntropyCalibrator2 = _bind(trt, "IInt8EntropyCalibrator2", {"__init__": calibrator_init})
        types_["int8_calibrator"] = (trt.IInt8EntropyCalibrator2, True)
    return types_


def _config_namespace(trt, TimingCache, Profile):  # noqa: N803 (the stand-in's classes)
    calls = trt.calls

    class Config:
        DLA_core, default_device_type, int8_calibrator = 0, trt.DeviceType.GPU, None

        def set_memory_pool_limit(self, pool, pool_size):
            _check(pool, trt.MemoryPoolType, "set_memory_pool_limit(pool)")
            _check(pool_size, int, "set_memory_pool_limit(pool_size)")
            calls.append(("set_memory_pool_limit", pool.name, pool_size))

        def set_flag(self, flag):
            _check(flag, trt.BuilderFlag, "set_flag(flag)")
            calls.append(("set_flag", flag.name))
            self._flags = {*getattr(self, "_flags", ()), flag.name}

        def add_optimization_profile(self, profile):
            _check(profile, Profile, "add_optimization_profile(profile)")
            calls.append(("add_optimization_profile",))
            self._profile = profile
            return 0

        def set_calibration_profile(self, profile):
            _check(profile, Profile, "set_calibration_profile(profile)")
            calls.append(("set_calibration_profile",))

        def create_timing_cache(self, serialized_timing_cache):
            data = bytes(memoryview(serialized_timing_cache))  # TypeError for anything but a buffer
            calls.append(("create_timing_cache", data))
            if data and not data.startswith(CACHE_MAGIC):
                return None  # not a timing cache
            self._created = TimingCache()
            self._created._data = data
            return self._created

        def set_timing_cache(self, cache, ignore_mismatch):
            if cache is None:
                raise RuntimeError("")  # pybind11's reference_cast_error: None for a const ITimingCache&
            _check(cache, TimingCache, "set_timing_cache(cache)")
            _check(ignore_mismatch, bool, "set_timing_cache(ignore_mismatch)")
            calls.append(("set_timing_cache", cache is getattr(self, "_created", None), ignore_mismatch))
            device = cache._data[len(CACHE_MAGIC):].partition(b"|")[0].decode()
            if cache._data and device != trt.device and not ignore_mismatch:
                return False  # the cache's header names another device
            self._cache = cache
            return True

        def get_timing_cache(self):
            return getattr(self, "_cache", None)

        def __setattr__(self, name, value):
            _Bound.__setattr__(self, name, value)
            if not name.startswith("_"):
                calls.append((f"config.{name} =", _name_of(value)))
    return dict(Config.__dict__)


def _builder_namespace(trt, network, parsed, Network_, Config, Profile):  # noqa: N803 (the stand-in's classes)
    calls = trt.calls

    def calibrate(config) -> bool:
        """TensorRT's use of an attached calibrator; False where the build is to fail mid-calibration."""
        calibrator = config.int8_calibrator
        if not getattr(calibrator, "_initialised", False):
            raise TypeError("IInt8EntropyCalibrator2.__init__() must be called when overriding __init__")
        if calibrator.read_calibration_cache():
            return True
        fed = 0
        while calibrator.get_batch([name for name, _ in network.inputs]) is not None:
            fed += 1
            if trt.calibration_fails_after is not None and fed >= trt.calibration_fails_after:
                return False
        calibrator.write_calibration_cache(memoryview(b"stand-in calibration table"))
        return True

    class Builder:
        num_DLA_cores = 2

        def __init__(self, logger):
            _check(logger, trt.Logger, "Builder(logger)")
            calls.append(("Builder",))

        def create_network(self, flags=0):
            _check(flags, int, "create_network(flags)")
            calls.append(("create_network", flags))
            return parsed

        def create_builder_config(self):
            return Config()

        def create_optimization_profile(self):
            return Profile()

        def build_serialized_network(self, network_, config):
            _check(network_, Network_, "build_serialized_network(network)")
            _check(config, Config, "build_serialized_network(config)")
            calls.append(("build_serialized_network", network_ is parsed))
            if trt.while_building is not None:
                trt.while_building()
            calibrator = object.__getattribute__(config, "int8_calibrator") if "INT8" in getattr(
                config, "_flags", ()) else None
            if calibrator is not None and not calibrate(config) or trt.fail_build:
                return None
            profile = getattr(getattr(config, "_profile", None), "_shapes", {})
            inputs = [Tensor(name, tuple(shape), profile=profile.get(name)) for name, shape in network.inputs]
            return memoryview(trt.plan(EngineSpec(inputs, list(network.outputs), network.plugins, network.run)))
    return dict(Builder.__dict__)
