"""TensorRT engines are not portable: each one is named and tagged with what it was built for.

An engine plan runs only with the TensorRT release that built it, on the GPU it was built for, so every
engine carries a tag, the JSON sidecar ``<engine>.json``: the bundle's ONNX sha256, the target (TensorRT
version, compute capability, GPU and Jetson module), the precision, the optimisation profile, the DLA core,
the calibration cache's sha256 and the plan's own sha256. As in jetson-inference's engine cache, a key
hashed from everything that changes the plan names the file (``yolox.fp16.trt10.3.0.sm87.1a2b3c4d5e6f.engine``),
and at load :func:`mismatches` says in words why a tag does not fit this machine and bundle. The sidecar
keeps the plan a plain TensorRT plan (``trtexec --loadEngine`` still reads it).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from edge import __version__
from edge.bundle import Bundle, sha256_file
from edge.errors import BadInputError, EdgeError
from edge.files import write_atomic

LOG = logging.getLogger(__name__)
ENGINE_FOLDER = "engines"
TAG_SCHEMA = 1
DEFAULT_WORKSPACE_MIB = 256  # a Nano shares 4 GiB between CPU and GPU; TensorRT's default is all of it


@dataclass(frozen=True)
class Target:
    """The machine an engine is for. ``device_model`` is the Jetson module name, ``""`` off a Jetson."""

    tensorrt: str
    compute_capability: str
    gpu: str
    device_model: str = ""


@dataclass(frozen=True)
class EngineOptions:
    """The choices made when building; a rebuild reuses them."""

    precision: str = "fp16"
    workspace_mib: int = DEFAULT_WORKSPACE_MIB
    dla_core: int | None = None


@dataclass(frozen=True)
class ProfileShape:
    """One input's optimisation-profile range (min = opt = max for a static input)."""

    name: str
    min: tuple[int, ...]
    opt: tuple[int, ...]
    max: tuple[int, ...]

    def admits(self, shape: tuple[int, ...]) -> bool:
        return len(shape) == len(self.min) and all(lo <= s <= hi for lo, s, hi in zip(self.min, shape, self.max))


@dataclass(frozen=True)
class EngineTag:
    bundle: str
    onnx_sha256: str
    target: Target
    options: EngineOptions
    profile: tuple[ProfileShape, ...]
    calibration_sha256: str | None = None
    plan_sha256: str = ""
    created: str = field(default="", compare=False)

    @property
    def key(self) -> str:
        """sha256 of everything that changes the plan (the workspace limit only steers tactic choice)."""
        identity = {"onnx": self.onnx_sha256, "target": asdict(self.target), "precision": self.options.precision,
                    "dla_core": self.options.dla_core, "profile": [asdict(p) for p in self.profile],
                    "calibration": self.calibration_sha256}
        return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()

    def file_name(self) -> str:
        """Readable prefix, then a short key: two builds that differ in anything get different names."""
        sm = self.target.compute_capability.replace(".", "")
        dla = f".dla{self.options.dla_core}" if self.options.dla_core is not None else ""
        return f"{self.bundle}.{self.options.precision}.trt{self.target.tensorrt}.sm{sm}{dla}.{self.key[:12]}.engine"

    def to_json(self) -> dict[str, Any]:
        return {"schema": TAG_SCHEMA, "key": self.key, "edge_version": __version__, **asdict(self)}

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> EngineTag:
        return cls(bundle=doc["bundle"], onnx_sha256=doc["onnx_sha256"], target=Target(**doc["target"]),
                   options=EngineOptions(**doc["options"]),
                   profile=tuple(ProfileShape(p["name"], tuple(p["min"]), tuple(p["opt"]), tuple(p["max"]))
                                 for p in doc["profile"]),
                   calibration_sha256=doc.get("calibration_sha256"), plan_sha256=doc["plan_sha256"],
                   created=doc.get("created", ""))


def default_precision(bundle: Bundle) -> str:
    """int8 for a quantized bundle (its ONNX has Q/DQ nodes, which build only as int8), else fp16."""
    return "int8" if bundle.precision == "int8" else "fp16"


def engine_folder(bundle: Bundle) -> Path:
    return bundle.root / ENGINE_FOLDER


def tag_path(engine: Path) -> Path:
    return engine.with_name(engine.name + ".json")


def write_engine(folder: Path, tag: EngineTag, plan: bytes) -> Path:
    """Writes the plan and its tag atomically (plan first, so a tag never names a half-written plan)."""
    tag = replace(tag, plan_sha256=hashlib.sha256(plan).hexdigest(),
                  created=datetime.now(timezone.utc).isoformat(timespec="seconds"))
    path = folder / tag.file_name()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        write_atomic(path, plan)
        write_atomic(tag_path(path), (json.dumps(tag.to_json(), indent=2) + "\n").encode())
    except OSError as e:
        raise EdgeError(f"{folder}: cannot write the engine ({e.strerror or e})") from None
    return path


def read_tag(engine: Path) -> EngineTag:
    sidecar = tag_path(engine)
    try:
        doc = json.loads(sidecar.read_text())
        if doc.get("schema") != TAG_SCHEMA:
            raise ValueError(f"schema {doc.get('schema')} is not {TAG_SCHEMA}")
        return EngineTag.from_json(doc)
    except FileNotFoundError:
        raise BadInputError(f"{engine}: no tag {sidecar.name} beside it (was it built by edge build-engine?)") from None
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise BadInputError(f"{sidecar}: unreadable engine tag ({type(e).__name__}: {e})") from None


def list_engines(folder: Path) -> list[tuple[Path, EngineTag]]:
    """Engines with a readable tag, in name order; anything else in the folder is not an engine of ours."""
    found = []
    for path in sorted(folder.glob("*.engine")) if folder.is_dir() else ():
        try:
            found.append((path, read_tag(path)))
        except BadInputError:
            continue
    return found


def mismatches(engine: Path, tag: EngineTag, *, onnx_sha256: str, target: Target,
               input_shapes: dict[str, tuple[int, ...]]) -> list[str]:
    """Why this engine cannot run this bundle on this machine, one phrase per reason; empty if it can."""
    reasons = []
    if tag.onnx_sha256 != onnx_sha256:
        reasons.append(f"it was built from another ONNX (sha256 {tag.onnx_sha256[:12]}…, the bundle's is "
                       f"{onnx_sha256[:12]}…)")
    built, here = tag.target, target
    if built.tensorrt != here.tensorrt:
        reasons.append(f"it was built with TensorRT {built.tensorrt}, this machine has {here.tensorrt}")
    if built.compute_capability != here.compute_capability or built.gpu != here.gpu:
        reasons.append(f"it was built for {built.gpu} (compute capability {built.compute_capability}), this GPU "
                       f"is {here.gpu} ({here.compute_capability})")
    if built.device_model != here.device_model:
        reasons.append(f"it was built on '{built.device_model or 'not a Jetson'}', this is "
                       f"'{here.device_model or 'not a Jetson'}'")
    ranges = {p.name: p for p in tag.profile}
    for name, shape in input_shapes.items():
        if name not in ranges or not ranges[name].admits(shape):
            reasons.append(f"input '{name}' {list(shape)} is outside the engine's profile")
    if not engine.is_file() or sha256_file(engine) != tag.plan_sha256:
        reasons.append("the plan file was changed or truncated after it was built")
    return reasons


def fitting_engine(folder: Path, *, onnx_sha256: str, target: Target, options: EngineOptions,
                   input_shapes: dict[str, tuple[int, ...]]) -> Path | None:
    """An engine in ``folder`` built with ``options``' precision and DLA core that runs this ONNX on this
    machine at these input shapes, if there is one."""
    for path, tag in list_engines(folder):
        same = (tag.options.precision, tag.options.dla_core) == (options.precision, options.dla_core)
        if same and not mismatches(path, tag, onnx_sha256=onnx_sha256, target=target, input_shapes=input_shapes):
            return path
    return None


def build_key(onnx_sha256: str, target: Target, options: EngineOptions) -> str:
    """What identifies one engine build before it starts (the tag's key also holds what the build finds out)."""
    identity = {"onnx": onnx_sha256, "target": asdict(target), "precision": options.precision,
                "dla_core": options.dla_core}
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()


@contextmanager
def build_lock(folder: Path, key: str) -> Iterator[None]:
    """Holds an exclusive ``fcntl.flock`` on ``<folder>/.build-<key>.lock`` for one build of that engine, across
    processes; logs when it has to wait for another. The lock file stays (removing it would race a waiter that
    has it open); the kernel drops the lock when its holder exits, however it exits."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        handle = open(folder / f".build-{key[:16]}.lock", "ab")  # noqa: SIM115 (held for the whole block)
    except OSError as e:
        raise EdgeError(f"{folder}: cannot create the engine build lock ({e.strerror or e})") from None
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            LOG.warning("%s: another process is building this engine; waiting for it", folder)
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
