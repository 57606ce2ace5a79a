"""Reads the members of TensorRT's Python classes and enums from its pybind11 sources, for tests/fake_tensorrt.py.

The stand-in rejects what the real bindings reject, so it needs the real member names of each release. They
come from NVIDIA/TensorRT's ``python/src/infer/*.cpp`` and ``python/src/parsers/pyOnnx.cpp`` at a release tag
(``8.5.2``, ``v8.6.1``, ``v10.3.0``, ``v11.0``): every ``py::class_``/``py::enum_`` statement with its chained
``.def*("name"``/``.value("NAME"`` calls, members added later to a bound variable, enum values exported into
their parent class, base classes' members, and module functions (``m.def``). Run it on a checkout to refresh
tests/tensorrt_members.json when edge supports another release::

    python -m tests.helpers.tensorrt_members /path/to/TensorRT 8.5.2 v8.6.1 v10.3.0 v11.0

Only the classes and enums edge's TensorRT code touches are kept (:data:`KEPT`), so the file stays small.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "tensorrt_members.json"
SOURCES = ("python/src/infer/pyCore.cpp", "python/src/infer/pyGraph.cpp", "python/src/infer/pyInt8.cpp",
           "python/src/infer/pyPlugin.cpp", "python/src/infer/pyFoundationalTypes.cpp",
           "python/src/parsers/pyOnnx.cpp")
KEPT = ("Logger", "Builder", "IBuilderConfig", "INetworkDefinition", "ITensor", "ILayer", "IOptimizationProfile",
        "ITimingCache", "OnnxParser", "ParserError", "Runtime", "ICudaEngine", "IExecutionContext", "IPluginRegistry",
        "IInt8EntropyCalibrator2", "BuilderFlag", "NetworkDefinitionCreationFlag", "MemoryPoolType", "DeviceType",
        "LayerType", "DataType", "TensorIOMode", "module")
_BINDING = re.compile(r"py::(class_|enum_)\s*<([^;{(]*?)>\s*(\w+)?\s*[({]\s*(\w+)\s*,\s*\"(\w+)\"")
_MEMBER = re.compile(r"\.(def|def_property|def_property_readonly|def_readwrite|def_readonly|def_static|value)\s*\(\s*"
                     r"\"(\w+)\"")


def strip(source: str) -> str:
    """The source without comments, preprocessor lines and string contents other than a call's first name."""
    source = re.sub(r'R"(\w*)\((.*?)\)\1"', '""', source, flags=re.S)
    source = re.sub(r"'(\\.|[^\\'])'", "' '", source)  # char literals, '"' among them
    source = re.sub(r"//[^\n]*|/\*.*?\*/", "", source, flags=re.S)
    return "\n".join(line for line in source.splitlines() if not line.lstrip().startswith("#"))


def statements(source: str) -> list[str]:
    """Each binding statement: from a ``py::class_``/``py::enum_``, a bound variable's or the module's ``.def``
    to its ``;`` (a ``;`` inside parentheses or braces, a lambda's, does not end it)."""
    found = []
    for start in re.finditer(r"py::(?:class_|enum_)\s*<|\b\w+\s*\.\s*def\s*\(", source):
        depth, index, quoted = 0, start.start(), False
        while index < len(source):
            char = source[index]
            if char == '"' and source[index - 1] != "\\":
                quoted = not quoted
            elif quoted:
                pass
            elif char in "({[":
                depth += 1
            elif char in ")}]":
                depth -= 1
            elif char == ";" and depth == 0:
                break
            index += 1
        found.append(source[start.start():index])
    return found


def members_of(sources: list[str]) -> dict[str, list[str]]:
    """Python name → sorted member names, for every class and enum bound in ``sources``."""
    members: dict[str, set[str]] = {"module": set()}
    variables: dict[str, str] = {}  # C++ variable holding a binding → its Python name
    cpp_names: dict[str, str] = {}  # C++ type → Python name
    bases: dict[str, list[str]] = {}
    for text in (s for source in sources for s in statements(strip(source))):
        binding = _BINDING.match(text)
        if binding:
            kind, types, variable, scope, name = binding.groups()
            cpp = [t.strip() for t in types.split(",")]
            cpp_names[cpp[0].split("::")[-1]] = name
            bases[name] = [t.split("::")[-1] for t in cpp[1:]]
            owned = members.setdefault(name, set())
            owned.update(m.group(2) for m in _MEMBER.finditer(text))
            if variable:
                variables[variable] = name
            if kind == "enum_" and ".export_values()" in text and scope in variables:
                members[variables[scope]].update(owned)
            continue
        head = re.match(r"(\w+)\s*\.", text)
        if head and head.group(1) in variables:
            members[variables[head.group(1)]].update(m.group(2) for m in _MEMBER.finditer(text))
        elif head and head.group(1) == "m":
            members["module"].update(m.group(2) for m in _MEMBER.finditer(text))
    resolved: dict[str, list[str]] = {}
    for name in members:
        names, pending = set(), [name]
        while pending:
            current = pending.pop()
            names |= members.get(current, set())
            pending += [cpp_names[b] for b in bases.get(current, []) if b in cpp_names]
        resolved[name] = sorted(names)
    return resolved


def release_members(repo: Path, tag: str) -> dict[str, list[str]]:
    sources = []
    for path in SOURCES:
        shown = subprocess.run(["git", "-C", str(repo), "show", f"{tag}:{path}"], capture_output=True, text=True)
        if shown.returncode == 0:
            sources.append(shown.stdout)
    found = members_of(sources)
    return {name: found[name] for name in KEPT if name in found}


def main(argv: list[str]) -> None:
    repo, tags = Path(argv[0]), argv[1:]
    releases = {tag.lstrip("v"): release_members(repo, tag) for tag in tags}
    lines = [f"{json.dumps(release)}: {{" + ",".join(
        f"\n  {json.dumps(name)}: {json.dumps(' '.join(names))}" for name, names in members.items()) + "}"
        for release, members in releases.items()]
    OUT.write_text("{\n " + ",\n ".join(lines) + "\n}\n")  # one line per class: diffs show what a release changed
    print(f"{OUT}: {', '.join(releases)}")


if __name__ == "__main__":
    main(sys.argv[1:])
