"""``edge run --config FILE``: a YAML file checked against one typed schema, the dataclasses below.

Every error names the file, the line and the key path, e.g. ``edge.yaml:12: sources[1].url: required``,
and a misspelt key gets the nearest valid one (difflib, as ultralytics' ``check_dict_alignment`` does).
The YAML is composed into nodes first, so every value still knows its line when it is checked.

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
    http: {port: 8080}
    mqtt: {host: broker.local, topic: "edge/{device}/{stream}/events"}
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

import yaml

from edge.errors import UsageError


@dataclass
class SourceConfig:
    url: str  # camera index, /dev/videoN, csi://N, rtsp://, http://, a file, a folder or a glob
    name: str | None = None  # stream name in events (default: from the url)
    width: int | None = None
    height: int | None = None
    fps: float | None = None
    fourcc: str | None = None
    timeout_s: float = 5.0
    realtime: bool = True  # files: play at their own rate, as a camera would deliver them
    reconnect: bool | None = None  # default: live sources yes, files no


@dataclass
class EventsConfig:
    max_mb: float | None = 100.0  # rotate events.jsonl at this size (None: never)
    backups: int = 5


@dataclass
class HttpConfig:
    port: int | None = None  # None: no HTTP server
    host: str = "127.0.0.1"
    token: str | None = None  # required when host is not loopback
    preview_fps: float = 15.0


@dataclass
class MqttConfig:
    host: str
    port: int = 1883
    topic: str = "edge/{device}/{stream}/events"
    client_id: str = ""
    username: str | None = None
    password: str | None = None
    qos: int = 0


@dataclass
class ReconnectConfig:
    first_s: float = 0.5
    cap_s: float = 30.0


@dataclass
class Config:
    sources: list[SourceConfig]
    bundles: list[str]
    out: str = "out/run"
    backend: str = "auto"
    workers: int | None = None
    threads: int | None = None
    batch: int | None = None  # frames per inference call, one per source (default: the number of sources)
    decode: str = "thread"
    tracking: bool = True
    video: bool = True
    device: str | None = None  # name in MQTT topics (default: the host name)
    events: EventsConfig = field(default_factory=EventsConfig)
    http: HttpConfig = field(default_factory=HttpConfig)
    mqtt: MqttConfig | None = None
    reconnect: ReconnectConfig = field(default_factory=ReconnectConfig)


CHOICES = {"backend": ("auto", "onnxruntime", "tensorrt"), "decode": ("thread", "process")}
AT_LEAST_ONE = ("workers", "threads", "batch")


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
            (kind,) = [a for a in args if a is not type(None)]
            return self.convert(node, kind, where)
        if dataclasses.is_dataclass(kind):
            return self.dataclass(node, kind, where)
        if origin is list:
            if not isinstance(node, yaml.SequenceNode):
                raise self.error(node, where, "expected a list")
            return [self.convert(item, args[0], f"{where}[{i}]") for i, item in enumerate(node.value)]
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
            values[key] = self.convert(value_node, hints[key], at)
            if key in CHOICES and values[key] not in CHOICES[key]:
                raise self.error(value_node, at, f"'{values[key]}' is not one of {', '.join(CHOICES[key])}")
            if key in AT_LEAST_ONE and values[key] is not None and values[key] < 1:
                raise self.error(value_node, at, f"must be at least 1, got {values[key]}")
        for name, f in fields.items():
            if (name not in values and f.default is dataclasses.MISSING
                    and f.default_factory is dataclasses.MISSING):
                raise self.error(node, f"{where}.{name}" if where else name, "required")
        return kind(**values)


def load_config(path: str | Path) -> Config:
    """Reads and checks a config file; raises :class:`UsageError` (exit 2) naming file, line and key."""
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
        raise UsageError(f"{path}:{line} not valid YAML ({getattr(e, 'problem', e)})") from None
    if node is None:
        raise UsageError(f"{path}: the config is empty (needs at least 'sources' and 'bundles')")
    checker = _Checker(path)
    config = checker.dataclass(node, Config, "")
    keys = {k.value: v for k, v in node.value}
    for key in ("sources", "bundles"):
        if not getattr(config, key):
            raise checker.error(keys[key], key, "needs at least one entry")
    if config.http.port is not None and config.http.token is None:
        from streams.http import is_loopback

        if not is_loopback(config.http.host):
            raise checker.error(keys["http"], "http.token", f"required when http.host ({config.http.host}) is not "
                                                            f"a loopback address")
    return config
