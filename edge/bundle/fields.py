"""Typed sections of ``bundle.json``: a frozen dataclass says which keys a section takes, their types and
defaults, and is checked against the JSON with the schema made from it.

Used for ``needs`` (:class:`edge.bundle.spec.Needs`) and for every decoder's ``decoder_args`` (its
``Args``), so a misspelt key is an error with the nearest valid key (difflib, as ``edge/config.py`` does)
rather than a setting silently ignored. Field ``metadata`` adds JSON-schema keywords (``minimum``, …).
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from collections.abc import Mapping
from typing import Any, Literal, TypeVar, Union

import jsonschema
from jsonschema.exceptions import best_match

T = TypeVar("T")
_JSON_TYPES = {bool: "boolean", int: "integer", float: "number", str: "string", type(None): "null"}


class FieldError(ValueError):
    """A value of ``bundle.json`` (or of a flag that fills it) that its schema rejects."""

    def __init__(self, field: str, problem: str):
        super().__init__(f"field '{field}': {problem}" if field else problem)
        self.field = field
        self.problem = problem


def schema_of(kind: type) -> dict[str, Any]:
    """The JSON schema of a dataclass's fields: an object of exactly those keys, none required."""
    hints = typing.get_type_hints(kind)
    properties = {f.name: {**_schema(hints[f.name]), **f.metadata} for f in dataclasses.fields(kind)}
    return {"type": "object", "properties": properties, "additionalProperties": False}


def _schema(hint: Any) -> dict[str, Any]:
    if hint in _JSON_TYPES:
        return {"type": _JSON_TYPES[hint]}
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is Literal:
        return {"enum": list(args)}
    if origin is tuple:  # tuple[X, ...] or a fixed count of X
        count = {} if args[-1] is Ellipsis else {"minItems": len(args), "maxItems": len(args)}
        return {"type": "array", "items": _schema(args[0]), **count}
    if origin in (Union, types.UnionType):  # keywords of one JSON type do not constrain the others
        members = [_schema(member) for member in args]
        return {k: v for m in members for k, v in m.items()} | {"type": [m["type"] for m in members]}
    raise TypeError(f"{hint!r} has no JSON form")


def check(schema: Mapping[str, Any], doc: Any, prefix: str = "") -> None:
    """Raises :class:`FieldError` for the most relevant problem of ``doc``; ``prefix`` is where it sits."""
    error = best_match(jsonschema.Draft202012Validator(schema).iter_errors(doc))
    if error is None:
        return
    path = [prefix] if prefix else []
    path += [str(p) for p in error.absolute_path]
    if error.validator != "additionalProperties":
        raise FieldError(".".join(path), error.message)
    known = list(error.schema.get("properties", {}))
    key = next(k for k in error.instance if k not in known)
    close = difflib.get_close_matches(key, known, n=1)
    hint = f"; did you mean '{close[0]}'?" if close else f" (keys: {', '.join(known)})" if known else " (none taken)"
    raise FieldError(".".join([*path, key]), f"unknown key{hint}")


def parse(kind: type[T], values: Mapping[str, Any], prefix: str = "") -> T:
    """``values`` (JSON) checked against ``kind``'s schema, then made into a ``kind``: lists become tuples,
    whole numbers given for a float become floats."""
    check(schema_of(kind), values, prefix)
    hints = typing.get_type_hints(kind)
    return kind(**{key: _convert(hints[key], value) for key, value in values.items()})


def _convert(hint: Any, value: Any) -> Any:
    members = typing.get_args(hint) if typing.get_origin(hint) in (Union, types.UnionType) else (hint,)
    if isinstance(value, list):
        items = next(typing.get_args(m)[0] for m in members if typing.get_origin(m) is tuple)
        return tuple(_convert(items, v) for v in value)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value) if float in members else int(value)
    return value
