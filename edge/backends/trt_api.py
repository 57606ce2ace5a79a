"""What differs between the TensorRT releases edge supports, decided in one place from the version string.

edge uses only the name-based I/O API (``num_io_tensors``, ``get_tensor_name``, ``set_tensor_address``,
``execute_async_v3``), which exists from 8.5 on, so inference is the same code on every supported release.
The builder is where releases differ (see the issue note for the documentation of each call):

- 8.5/8.6 (JetPack 5.1, 6.0 DP): ``NetworkDefinitionCreationFlag.EXPLICIT_BATCH`` is required for ONNX;
  precision is enabled with ``BuilderFlag.FP16``/``INT8``; INT8 without Q/DQ is calibrated.
- 10.x (JetPack 6.1/6.2): networks are always explicit-batch (the flag is deprecated and ignored, so it is
  not passed); the precision flags and the calibrator still exist (deprecated from 10.12 and 10.1).
- 11.x: every network is strongly typed; the precision flags and ``int8_calibrator`` are gone. The ONNX must
  already carry its precision (fp16 tensors from ModelOpt AutoCast, INT8 as Q/DQ). DLA stays
  (``DeviceType.DLA``, ``IBuilderConfig.DLA_core``, ``BuilderFlag.GPU_FALLBACK`` are in 11.0's bindings; DLA
  builds there are strongly typed too); whether this device has DLA cores is the builder's to say
  (``Builder.num_DLA_cores``).

Nothing here imports TensorRT: the recipe is plain data the builder turns into calls, so the dispatch is
tested with version strings alone.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from edge.errors import UsageError

MINIMUM = (8, 5)
PRECISIONS = ("fp32", "fp16", "int8")


@dataclass(frozen=True)
class TrtApi:
    """The API facts of one TensorRT release."""

    version: tuple[int, ...]

    @classmethod
    def parse(cls, text: str) -> TrtApi:
        """``tensorrt.__version__`` (``"8.5.2.2"``, ``"10.3.0"``) → the API of that release, or a clear error."""
        match = re.match(r"(\d+)\.(\d+)(?:\.(\d+))?", text.strip())
        if not match:
            raise UsageError(f"TensorRT reports version '{text}', which edge cannot read")
        version = tuple(int(part) for part in match.groups() if part is not None)
        if version[:2] < MINIMUM:
            raise UsageError(f"TensorRT {text} is older than {MINIMUM[0]}.{MINIMUM[1]}: edge needs the name-based "
                             f"I/O API (execute_async_v3), which JetPack 5.1 and newer have")
        return cls(version)

    @property
    def major(self) -> int:
        return self.version[0]

    @property
    def network_flags(self) -> tuple[str, ...]:
        """``NetworkDefinitionCreationFlag`` members for an ONNX network: EXPLICIT_BATCH before 10 (required by
        the ONNX parser); none from 10 on (implied, then gone in 11; STRONGLY_TYPED is implied in 11 and
        edge builds 10.x weakly typed so that FP16 stays available to the layers outside Q/DQ regions)."""
        return ("EXPLICIT_BATCH",) if self.major < 10 else ()

    @property
    def strongly_typed_only(self) -> bool:
        """From 11 on every network is strongly typed: no precision flags, no calibrator."""
        return self.major >= 11

    def __str__(self) -> str:
        return ".".join(str(part) for part in self.version)


@dataclass(frozen=True)
class BuildRecipe:
    """What the builder sets once the network is parsed: ``BuilderFlag`` members by name, and whether an
    INT8 calibrator must be attached."""

    builder_flags: tuple[str, ...]
    calibrate: bool


def build_recipe(api: TrtApi, precision: str, *, has_qdq: bool, has_fp16_tensors: bool,
                 dla_core: int | None = None) -> BuildRecipe:
    """The flags that build ``precision`` from a network with (or without) Q/DQ nodes and fp16 tensors.

    Raises :class:`UsageError` for a combination the release cannot build, saying what would work.
    """
    if precision not in PRECISIONS:
        raise UsageError(f"--precision: '{precision}' is not one of {', '.join(PRECISIONS)}")
    if has_qdq and precision != "int8":
        raise UsageError(f"--precision {precision}: the ONNX is quantized (it has Q/DQ nodes); build it with "
                         f"--precision int8")
    if api.strongly_typed_only:
        _check_strongly_typed(api, precision, has_qdq, has_fp16_tensors)
        builder_flags: tuple[str, ...] = ()
    else:
        # INT8 engines keep FP16 enabled so that the layers outside the quantized regions do not fall back to FP32.
        builder_flags = {"fp32": (), "fp16": ("FP16",), "int8": ("INT8", "FP16")}[precision]
    if dla_core is not None:
        if precision == "fp32":
            raise UsageError("--dla-core: DLA runs fp16 or int8 only; add --precision fp16 or int8")
        builder_flags += ("GPU_FALLBACK",)
    calibrate = precision == "int8" and not has_qdq
    return BuildRecipe(builder_flags, calibrate)


def _check_strongly_typed(api: TrtApi, precision: str, has_qdq: bool, has_fp16_tensors: bool) -> None:
    if precision == "int8" and not has_qdq:
        raise UsageError(f"--precision int8: TensorRT {api} has no INT8 calibration; it needs an ONNX with "
                         f"Q/DQ nodes (quantize the bundle with 'edge quantize' first)")
    if precision == "fp16" and not has_fp16_tensors:
        raise UsageError(f"--precision fp16: TensorRT {api} builds strongly typed networks and has no FP16 flag; "
                         f"this ONNX is float32 (convert it to fp16 with ModelOpt AutoCast, or use --precision fp32)")
    if precision == "fp32" and has_fp16_tensors:
        raise UsageError(f"--precision fp32: the ONNX holds fp16 tensors, which TensorRT {api} keeps as typed; "
                         f"build it with --precision fp16")
