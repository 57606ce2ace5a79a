"""The run configuration, declared once: :class:`RunConfig` for what ``edge replay`` and ``edge run`` share,
:class:`DaemonConfig` for what only the daemon has (its sources, HTTP, MQTT, event rotation, reconnects).

Each :class:`RunConfig` field carries an :class:`Option` (help, flag, choices, minimum). From that one
declaration come the YAML keys of ``edge run --config`` (:func:`load_config`), the command-line flags of both
commands (:func:`add_run_options`, :func:`run_options`) and their checks, so a key, a flag, a default or a
check cannot exist in one place and not in the other. Booleans are ``--KEY/--no-KEY`` flags.

YAML errors name the file, the line and the key path, e.g. ``edge.yaml:12: sources[1].url: required``, and a
misspelt key gets the nearest valid one (difflib, as ultralytics' ``check_dict_alignment`` does). The YAML
is composed into nodes first, so every value still knows its line when it is checked.

Example::

    sources:
      - url: rtsp://10.0.0.20/stream1
        name: door
      - url: /dev/video0
        width: 1280
        height: 720
        fps: 30
        fourcc: MJPG
    bundles: [/opt/edge/bundles/yolox_nano]
    out: /var/lib/edge
    batch: 2  # both cameras' latest frames in one inference call (where the bundle's batch is dynamic)
    score: 0.4  # every bundle; and per bundle, over that:
    thresholds: {yolox_nano: {score: 0.5, classes: [person, car], max_det: 50}}
    http: {port: 8080}
    mqtt: {host: broker.local, topic: "edge/{device}/{stream}/events"}
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import enum
import math
import re
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

import yaml

from edge.analytics.settings import AnalyticsSettings
from edge.backends import BACKEND_NAMES
from edge.errors import UsageError
from streams.base import CaptureSettings
from streams.feed import Backoff, DecodeMode


@dataclass(frozen=True)
class Option:
    """How a run option is offered and checked, in YAML and on the command line alike."""

    help: str
    flag: str | None = None  # default: --KEY with '-' for '_'
    metavar: str | None = None
    choices: tuple[str, ...] = ()
    minimum: float | None = None
    maximum: float | None = None
    separator: str | None = None  # a list given as one flag value, e.g. --classes person,car


def option(help: str, **more: Any) -> dict[str, Option]:
    """A dataclass field's ``metadata`` that declares it a run option."""
    return {"option": Option(help, **more)}


@dataclass(kw_only=True)
class Filters:
    """Thresholds and filters chosen at run time over the bundle's own (``bundle.json`` ``thresholds``), as
    Ultralytics' ``conf``/``iou``/``classes``/``max_det`` and jetson-inference's ``--threshold``. As run options
    they apply to every bundle; under ``thresholds`` (``--thresholds BUNDLE:KEY=VALUE``), to one bundle, over
    the run options (:mod:`edge.filters` applies them)."""

    score: float | None = field(default=None, metadata=option(
        "keep results scoring at least X, 0..1 (default: each bundle's)", metavar="X", minimum=0, maximum=1))
    iou: float | None = field(default=None, metadata=option(
        "NMS: a box overlapping a better one of its class by more than X goes, 0..1 (default: each bundle's)",
        metavar="X", minimum=0, maximum=1))
    classes: list[str] | None = field(default=None, metadata=option(
        "keep only detections of these labels, comma-separated, e.g. person,car (detection bundles)",
        metavar="LABELS", separator=","))
    max_det: int | None = field(default=None, metadata=option(
        "at most N detections per frame and bundle (default: each bundle's)", metavar="N", minimum=1))


@dataclass(kw_only=True)
class RunConfig(Filters):
    """What a run does, the same keys for ``edge replay`` and ``edge run`` (flags) and ``edge run --config``."""

    bundles: list[str] = field(metadata=option("bundle folder; repeatable", flag="--bundle", metavar="DIR"))
    out: str | None = field(default=None, metadata=option(
        "output folder (default: out/replay or out/run, after the command)", metavar="DIR"))
    backend: str = field(default="auto", metadata=option("inference backend", choices=BACKEND_NAMES))
    engine_build: bool = field(default=True, metadata=option(
        "build a TensorRT engine at load where none fits this machine (--no-engine-build: run ONNX Runtime "
        "instead)"))
    workers: int | None = field(default=None, metadata=option(
        "parallel inference workers (default: 2 on 2+ CPUs)", metavar="N", minimum=1, maximum=64))
    threads: int | None = field(default=None, metadata=option(
        "inference threads per worker (default: CPUs / workers)", metavar="N", minimum=1, maximum=256))
    batch: int | None = field(default=None, metadata=option(
        "frames of up to N sources per inference call, where the bundle's batch dimension is dynamic "
        "(default: the number of sources)", metavar="N", minimum=1, maximum=256))
    decode: DecodeMode = field(default=DecodeMode.THREAD, metadata=option(
        "decode sources in threads, or in processes through shared memory"))
    tracking: bool = field(default=True, metadata=option("track_id on detections (ByteTrack)"))
    video: bool = field(default=True, metadata=option("write the annotated video"))
    save_masks: bool = field(default=False, metadata=option(
        "write each frame's class, instance and panoptic id maps as PNGs under OUT/<kind>/<bundle>/"))
    thresholds: dict[str, Filters] = field(default_factory=dict, metadata=option(
        "one bundle's thresholds and filters over the run's, e.g. yolox_nano:score=0.5 or "
        "yolox_nano:classes=person,car (keys: score, iou, classes, max_det); repeatable",
        metavar="BUNDLE:KEY=VALUE"))
    interval: dict[str, int] = field(default_factory=dict, metadata=option(
        "run bundle NAME on every N-th frame of each stream only; the tracker carries its boxes in between "
        "(repeatable; YAML: a mapping)", metavar="NAME=N", minimum=1))
    motion: bool = field(default=False, metadata=option("skip inference on frames in which nothing moves"))
    motion_area: float = field(default=0.002, metadata=option(
        "motion gating: the fraction of a frame that must change for it to move", metavar="F"))
    motion_crop: bool = field(default=False, metadata=option(
        "motion gating: detectors run on the moving part of a frame only; the tracker holds boxes elsewhere"))
    analytics: str | AnalyticsSettings | None = field(default=None, metadata=option(
        "zones, lines, their events and snapshots: a YAML file (in edge run --config, also the file's keys "
        "inline; see README, Zones, lines and their events)", metavar="FILE"))

    def __post_init__(self) -> None:
        self.decode = DecodeMode(self.decode)  # also when made in code with the text


@dataclass(frozen=True, kw_only=True)
class SourceConfig(CaptureSettings):
    """One daemon source: where it is, what to ask the camera for (:class:`streams.base.CaptureSettings`'
    keys: width, height, fps, fourcc, timeout_s), and how to read it."""

    url: str  # camera index, /dev/videoN, csi://N, rtsp://, http://, a file, a folder or a glob
    name: str | None = None  # stream name in events (default: from the url, streams.uris.stream_name)
    realtime: bool = True  # files: play at their own rate, as a camera would deliver them
    reconnect: bool | None = None  # default: live sources yes, files no

    def capture_settings(self) -> CaptureSettings:
        return CaptureSettings(**{f.name: getattr(self, f.name) for f in dataclasses.fields(CaptureSettings)})


# Bounds of the daemon's own keys (streams' dataclasses declare theirs the same way, as field metadata).
_POSITIVE = {"above": 0.0}
_PORT = {"minimum": 0, "maximum": 65535}


@dataclass
class EventsConfig:
    max_mb: float | None = field(default=100.0, metadata=_POSITIVE)  # rotate events.jsonl at this size (None: never)
    backups: int = field(default=5, metadata={"minimum": 0, "maximum": 1000})


@dataclass
class HttpConfig:
    port: int | None = field(default=None, metadata=_PORT)  # None: no HTTP server; 0: any free port
    host: str = "127.0.0.1"
    token: str | None = None  # required when host is not loopback
    preview_fps: float = field(default=15.0, metadata=_POSITIVE)


@dataclass
class MqttConfig:
    host: str
    port: int = field(default=1883, metadata={"minimum": 1, "maximum": 65535})
    topic: str = "edge/{device}/{stream}/events"  # {device} and {stream} are filled in
    analytics_topic: str = "edge/{device}/{stream}/analytics"  # one message per zone or line event
    client_id: str = ""
    username: str | None = None
    password: str | None = None
    qos: int = field(default=0, metadata={"minimum": 0, "maximum": 2})


@dataclass(kw_only=True)
class DaemonConfig(RunConfig):
    """``edge run``: the run options plus the daemon's sources and services. ``reconnect`` is
    :class:`streams.feed.Backoff` (keys first_s, cap_s)."""

    sources: list[SourceConfig]
    device: str | None = None  # name in MQTT topics (default: the host name)
    events: EventsConfig = field(default_factory=EventsConfig)
    http: HttpConfig = field(default_factory=HttpConfig)
    mqtt: MqttConfig | None = None
    reconnect: Backoff = Backoff()
    # A rate line per stream in the logs every so many seconds, as DeepStream's **PERF (None: none).
    perf_s: float | None = field(default=5.0, metadata=option("seconds between rate lines", minimum=0.1))


RUN_OPTIONS = {f.name: f for f in dataclasses.fields(RunConfig)}
FILTER_OPTIONS = {f.name: f for f in dataclasses.fields(Filters)}
_HINTS = typing.get_type_hints(RunConfig)


def _plain_type(kind: Any) -> Any:
    """``X | None`` → ``X``; of ``X | Y``, ``X``, the one a flag takes (``Y`` is a dataclass YAML may give
    instead, as a mapping)."""
    if typing.get_origin(kind) in (Union, types.UnionType):
        kind = [a for a in typing.get_args(kind) if a is not type(None)][0]
    return kind


def _choices(kind: Any, declared: Option | None) -> tuple[str, ...]:
    if isinstance(kind, type) and issubclass(kind, enum.Enum):
        return tuple(m.value for m in kind)
    return declared.choices if declared is not None else ()


def _bounds(metadata: Mapping[str, Any]) -> tuple[Any, Any, Any]:
    """A field's (minimum, above, maximum): a run option's :class:`Option`, or plain ``metadata`` keys."""
    declared: Option | None = metadata.get("option")
    if declared is not None:
        return declared.minimum, None, declared.maximum
    return metadata.get("minimum"), metadata.get("above"), metadata.get("maximum")


def _number(bound: float) -> str:
    """A bound as a user writes it: ``1`` for a float bound of 1.0."""
    return f"{bound:g}" if isinstance(bound, float) else str(bound)


def problem(metadata: Mapping[str, Any], kind: Any, value: Any) -> str | None:
    """What is wrong with a converted ``value`` of a field of type ``kind`` with ``metadata``, or ``None``."""
    choices = _choices(kind, metadata.get("option"))
    if choices and value not in choices:
        return f"'{value}' is not one of {', '.join(choices)}"
    if isinstance(value, float) and not math.isfinite(value):
        return f"expected a finite number, got {value}"
    pattern = metadata.get("pattern")
    if pattern is not None and isinstance(value, str) and not re.fullmatch(pattern, value):
        return f"'{value}' does not match {pattern}"
    declared: Option | None = metadata.get("option")
    if declared is not None and declared.separator is not None and not value:
        return "give at least one"
    if isinstance(value, dict):  # a mapping's values (interval: {NAME: N}) are checked one by one
        return next((f"{key}: {wrong}" for key, number in value.items()
                     if (wrong := problem(metadata, type(number), number))), None)
    if value is None or isinstance(value, (str, bool, list)) or dataclasses.is_dataclass(value):
        return None
    minimum, above, maximum = _bounds(metadata)
    if minimum is not None and value < minimum:
        return f"must be at least {_number(minimum)}, got {value}"
    if above is not None and not value > above:
        return f"must be more than {above:g}, got {value}"
    if maximum is not None and value > maximum:
        return f"must be at most {_number(maximum)}, got {value}"
    return None


class _Checker:
    def __init__(self, path: Path):
        self.path = path
        self._constructor = yaml.SafeLoader("")

    def error(self, node: yaml.Node, where: str, message: str) -> UsageError:
        return UsageError(f"{self.path}:{node.start_mark.line + 1}: {where}: {message}")

    def convert(self, node: yaml.Node, kind: Any, where: str) -> Any:
        origin, args = typing.get_origin(kind), typing.get_args(kind)
        if origin in (Union, types.UnionType):
            if isinstance(node, yaml.ScalarNode) and node.tag == "tag:yaml.org,2002:null" and type(None) in args:
                return None
            mappings = [a for a in args if dataclasses.is_dataclass(a)]
            if isinstance(node, yaml.MappingNode) and mappings:
                return self.dataclass(node, mappings[0], where)
            return self.convert(node, _plain_type(kind), where)
        if dataclasses.is_dataclass(kind):
            return self.dataclass(node, kind, where)
        if origin is list:
            if not isinstance(node, yaml.SequenceNode):
                raise self.error(node, where, "expected a list")
            return [self.convert(item, args[0], f"{where}[{i}]") for i, item in enumerate(node.value)]
        if origin is dict:
            if not isinstance(node, yaml.MappingNode):
                raise self.error(node, where, "expected a mapping")
            return {self.convert(k, args[0], where): self.convert(v, args[1], f"{where}.{k.value}")
                    for k, v in node.value}
        if isinstance(kind, type) and issubclass(kind, enum.Enum):
            return self.convert(node, str, where)  # checked against its values, then made a member
        if not isinstance(node, yaml.ScalarNode):
            raise self.error(node, where, f"expected a {kind.__name__}")
        value = self._constructor.construct_object(node)
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if kind is str and isinstance(value, (int, float)) and not isinstance(value, bool):
            value = node.value  # a camera index or a port written bare is still text where text is wanted
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise self.error(node, where, f"expected a {kind.__name__}, got {node.value!r}")
        return value

    def dataclass(self, node: yaml.Node, kind: type, where: str) -> Any:
        if not isinstance(node, yaml.MappingNode):
            raise self.error(node, where or "config", "expected a mapping of keys to values")
        hints = typing.get_type_hints(kind)
        fields = {f.name: f for f in dataclasses.fields(kind)}
        values: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key = key_node.value
            at = f"{where}.{key}" if where else key
            if key not in fields:
                close = difflib.get_close_matches(key, list(fields), n=1)
                hint = f"; did you mean '{close[0]}'?" if close else f" (keys: {', '.join(fields)})"
                raise self.error(key_node, at, f"unknown key{hint}")
            value = self.convert(value_node, hints[key], at)
            wrong = problem(fields[key].metadata, _plain_type(hints[key]), value)
            if wrong:
                raise self.error(value_node, at, wrong)
            values[key] = _member(hints[key], value)
        for name, f in fields.items():
            if (name not in values and f.default is dataclasses.MISSING
                    and f.default_factory is dataclasses.MISSING):
                raise self.error(node, f"{where}.{name}" if where else name, "required")
        try:
            return kind(**values)
        except ValueError as e:  # the dataclass's own check of its values together (__post_init__)
            raise self.error(node, where or "config", str(e)) from None


def _member(kind: Any, value: Any) -> Any:
    """An enum field's text as the enum's member; anything else as it is."""
    kind = _plain_type(kind)
    if value is not None and isinstance(kind, type) and issubclass(kind, enum.Enum):
        return kind(value)
    return value


def load_yaml(path: str | Path, kind: type, empty: str) -> tuple[Any, yaml.Node, _Checker]:
    """Reads a YAML file and checks it as the dataclass ``kind`` (see :func:`load_config`); ``empty`` says what an
    empty file lacks. Returns the value, the document's node and the checker, for further checks by line."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise UsageError(f"{path}: cannot read the config ({e.strerror})") from None
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = f"{mark.line + 1}:" if mark else ""
        raise UsageError(f"{path}:{line} not valid YAML ({getattr(e, 'problem', None) or e})") from None
    if node is None:
        raise UsageError(f"{path}: the config is empty ({empty})")
    checker = _Checker(path)
    return checker.dataclass(node, kind, ""), node, checker


def load_config(path: str | Path) -> DaemonConfig:
    """Reads and checks a config file; raises :class:`UsageError` (exit 2) naming file, line and key."""
    config, node, checker = load_yaml(path, DaemonConfig, "needs at least 'sources' and 'bundles'")
    keys = {k.value: v for k, v in node.value}
    for key in ("sources", "bundles"):
        if not getattr(config, key):
            raise checker.error(keys[key], key, "needs at least one entry")
    if config.mqtt is not None:
        try:
            config.mqtt.topic.format(device="device", stream="stream")
        except (KeyError, IndexError, ValueError):
            raise checker.error(keys["mqtt"], "mqtt.topic", f"only {{device}} and {{stream}} may stand in braces, "
                                                            f"not '{config.mqtt.topic}'") from None
    if config.http.port is not None and config.http.token is None:
        from streams.http import is_loopback

        if not is_loopback(config.http.host):
            raise checker.error(keys["http"], "http.token", f"required when http.host ({config.http.host}) is not "
                                                            f"a loopback address")
    return config


def flag_of(name: str) -> str:
    declared: Option = RUN_OPTIONS[name].metadata["option"]
    return declared.flag or "--" + name.replace("_", "-")


def add_run_options(parser: argparse.ArgumentParser) -> None:
    """Every :class:`RunConfig` key as a flag. Defaults stay in the dataclass: a flag not given is absent
    from the parsed arguments (so ``edge run --config`` keeps the file's value) and named in the help."""
    group = parser.add_argument_group("run options (the same for edge replay and edge run; as keys of edge run "
                                      "--config: the flag without '--', '_' for '-', bundles for --bundle)")
    for name, f in RUN_OPTIONS.items():
        declared: Option = f.metadata["option"]
        kind = _plain_type(_HINTS[name])
        shown = getattr(f.default, "value", f.default)
        if isinstance(f.default, bool):
            shown = "on" if f.default else "off"
        text = declared.help if f.default in (None, dataclasses.MISSING) else f"{declared.help} (default: {shown})"
        common = {"dest": name, "default": argparse.SUPPRESS, "help": text}
        if kind is bool:
            group.add_argument(flag_of(name), action=argparse.BooleanOptionalAction, **common)
        elif typing.get_origin(kind) is dict and typing.get_args(kind)[1] is Filters:
            group.add_argument(flag_of(name), action=_PerBundle, metavar=declared.metavar, **common)
        elif typing.get_origin(kind) is list and declared.separator is None:
            group.add_argument(flag_of(name), action="append", metavar=declared.metavar, **common)
        elif typing.get_origin(kind) is dict:  # KEY=VALUE, repeatable; run_options makes the mapping
            group.add_argument(flag_of(name), action="append", type=_pair_type(name, kind), metavar=declared.metavar,
                               **common)
        else:
            choices = _choices(kind, declared)
            metavar = "{" + ",".join(choices) + "}" if choices else declared.metavar
            group.add_argument(flag_of(name), type=_flag_type(f, kind), metavar=metavar, **common)


def _flag_type(f: dataclasses.Field, kind: Any):
    """The flag's converter: the field's type and :func:`problem`'s check, in argparse's error form."""
    metadata = f.metadata
    declared: Option = metadata["option"]

    def parse(text: str) -> Any:
        value: Any = text
        if kind in (int, float):
            try:
                value = kind(text)
            except ValueError:
                raise argparse.ArgumentTypeError(f"expected a {kind.__name__}, not '{text}'") from None
        elif declared.separator is not None:
            value = [part.strip() for part in text.split(declared.separator) if part.strip()]
        wrong = problem(metadata, kind, value)
        if wrong:
            raise argparse.ArgumentTypeError(wrong)
        return _member(kind, value)

    return parse


class _PerBundle(argparse.Action):
    """``--thresholds BUNDLE:KEY=VALUE``: one :class:`Filters` key of one bundle, converted and checked as the
    run option of the same name is; repeated flags add up into the ``{bundle: Filters}`` mapping."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, text: Any,
                 option_string: str | None = None) -> None:
        bundle, _, setting = str(text).partition(":")
        key, equals, value = setting.partition("=")
        if not bundle or not equals or key not in FILTER_OPTIONS:
            raise argparse.ArgumentError(self, f"expected BUNDLE:KEY=VALUE with KEY one of "
                                               f"{', '.join(FILTER_OPTIONS)}, not '{text}'")
        try:
            converted = _flag_type(FILTER_OPTIONS[key], _plain_type(_HINTS[key]))(value)
        except argparse.ArgumentTypeError as e:
            raise argparse.ArgumentError(self, f"{bundle}:{key}: {e}") from None
        given = dict(getattr(namespace, self.dest, None) or {})
        given[bundle] = dataclasses.replace(given.get(bundle, Filters()), **{key: converted})
        setattr(namespace, self.dest, given)


def _pair_type(name: str, kind: Any):
    """A mapping option's converter: ``KEY=VALUE`` → ``(KEY, VALUE)``, the value checked as one of the field's."""
    key_kind, value_kind = typing.get_args(kind)

    def parse(text: str) -> tuple[Any, Any]:
        key, equals, value = text.partition("=")
        if not equals or not key:
            raise argparse.ArgumentTypeError(f"expected KEY=VALUE, not '{text}'")
        return key_kind(key), _flag_type(RUN_OPTIONS[name], value_kind)(value)

    return parse


def run_options(args: argparse.Namespace) -> dict[str, Any]:
    """The run options given on the command line, by key (those not given are absent)."""
    given = {name: getattr(args, name) for name in RUN_OPTIONS if hasattr(args, name)}
    for name, value in given.items():
        if typing.get_origin(_plain_type(_HINTS[name])) is dict:
            given[name] = dict(value)
    return given


def run_config(args: argparse.Namespace) -> RunConfig:
    """The :class:`RunConfig` of a command line without a config file; at least one ``--bundle``."""
    given = run_options(args)
    if not given.get("bundles"):
        raise UsageError(f"{flag_of('bundles')}: give at least one bundle folder")
    return RunConfig(**given)
