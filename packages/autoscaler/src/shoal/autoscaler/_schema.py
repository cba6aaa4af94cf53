"""A small declarative schema for nested config mappings.

Each node checks a value, converts it (defaults filled in, sizes parsed) and
records every problem as ``(path, message)`` instead of stopping at the first,
so one run of ``shoal up`` shows everything wrong with a file. Paths read like
``available_node_types.gpu_worker.max_workers`` or ``setup_commands[2]``.
The same nodes render a JSON Schema for editors.
"""

from __future__ import annotations

import difflib
import numbers
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "AnyValue",
    "Bool",
    "Errors",
    "Field",
    "Int",
    "ListOf",
    "MapOf",
    "Node",
    "Number",
    "Obj",
    "Str",
    "join",
]

Errors = list[tuple[str, str]]
_MISSING = object()
_PLAIN_KEY = re.compile(r"^[A-Za-z0-9_\-]+$")


def join(path: str, key: str | int) -> str:
    """Extend a path by a mapping key or a list index."""
    if isinstance(key, int):
        return f"{path}[{key}]"
    part = key if _PLAIN_KEY.match(key) else repr(key)
    return f"{path}.{part}" if path else part


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, numbers.Number):
        return "a number"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, Mapping):
        return "a mapping"
    return type(value).__name__


class Node:
    """One schema node: ``check`` returns the converted value or ``_MISSING`` after recording errors."""

    description = ""

    def check(self, value: Any, path: str, errors: Errors) -> Any:
        raise NotImplementedError

    def json_schema(self) -> dict[str, Any]:
        raise NotImplementedError


@dataclass
class AnyValue(Node):
    def check(self, value: Any, path: str, errors: Errors) -> Any:
        return value

    def json_schema(self) -> dict[str, Any]:
        return {}


@dataclass
class Str(Node):
    pattern: str | None = None
    pattern_help: str = ""
    choices: tuple[str, ...] | None = None
    min_length: int = 0

    def check(self, value: Any, path: str, errors: Errors) -> Any:
        if not isinstance(value, str):
            errors.append((path, f"must be a string, got {_type_name(value)}"))
            return _MISSING
        if len(value) < self.min_length:
            errors.append((path, "must not be empty" if self.min_length == 1 else f"too short: {value!r}"))
            return _MISSING
        if self.choices is not None and value not in self.choices:
            close = difflib.get_close_matches(value, self.choices, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            errors.append((path, f"must be one of {', '.join(self.choices)}, got {value!r}{hint}"))
            return _MISSING
        if self.pattern is not None and not re.fullmatch(self.pattern, value):
            errors.append((path, f"{value!r} is not valid: {self.pattern_help or 'must match ' + self.pattern}"))
            return _MISSING
        return value

    def json_schema(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": "string"}
        if self.pattern:
            out["pattern"] = f"^{self.pattern}$"
        if self.choices:
            out["enum"] = list(self.choices)
        if self.min_length:
            out["minLength"] = self.min_length
        return out


@dataclass
class Number(Node):
    minimum: float | None = None
    exclusive_minimum: float | None = None
    integer: bool = False

    def check(self, value: Any, path: str, errors: Errors) -> Any:
        kind = "an integer" if self.integer else "a number"
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            errors.append((path, f"must be {kind}, got {_type_name(value)}"))
            return _MISSING
        if self.integer and not float(value).is_integer():
            errors.append((path, f"must be {kind}, got {value!r}"))
            return _MISSING
        if self.minimum is not None and value < self.minimum:
            errors.append((path, f"must be >= {self.minimum:g}, got {value!r}"))
            return _MISSING
        if self.exclusive_minimum is not None and value <= self.exclusive_minimum:
            errors.append((path, f"must be > {self.exclusive_minimum:g}, got {value!r}"))
            return _MISSING
        return int(value) if self.integer else float(value)

    def json_schema(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": "integer" if self.integer else "number"}
        if self.minimum is not None:
            out["minimum"] = self.minimum
        if self.exclusive_minimum is not None:
            out["exclusiveMinimum"] = self.exclusive_minimum
        return out


def Int(minimum: int | None = None) -> Number:
    return Number(minimum=minimum, integer=True)


@dataclass
class Bool(Node):
    def check(self, value: Any, path: str, errors: Errors) -> Any:
        if not isinstance(value, bool):
            errors.append((path, f"must be true or false, got {_type_name(value)}"))
            return _MISSING
        return value

    def json_schema(self) -> dict[str, Any]:
        return {"type": "boolean"}


@dataclass
class ListOf(Node):
    item: Node

    def check(self, value: Any, path: str, errors: Errors) -> Any:
        if not isinstance(value, list):
            errors.append((path, f"must be a list, got {_type_name(value)}"))
            return _MISSING
        out = []
        for i, v in enumerate(value):
            converted = self.item.check(v, join(path, i), errors)
            if converted is not _MISSING:
                out.append(converted)
        return out

    def json_schema(self) -> dict[str, Any]:
        return {"type": "array", "items": self.item.json_schema()}


@dataclass
class MapOf(Node):
    """A mapping with free keys (checked by ``key``) and values of one kind."""

    value: Node
    key: Str = field(default_factory=lambda: Str(min_length=1))
    min_items: int = 0

    def check(self, value: Any, path: str, errors: Errors) -> Any:
        if not isinstance(value, Mapping):
            errors.append((path, f"must be a mapping, got {_type_name(value)}"))
            return _MISSING
        if len(value) < self.min_items:
            errors.append((path, f"must have at least {self.min_items} entr{'y' if self.min_items == 1 else 'ies'}"))
            return _MISSING
        out = {}
        for k, v in value.items():
            sub = join(path, str(k))
            if self.key.check(k, sub, errors) is _MISSING:
                continue
            converted = self.value.check(v, sub, errors)
            if converted is not _MISSING:
                out[k] = converted
        return out

    def json_schema(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": "object", "additionalProperties": self.value.json_schema()}
        if self.key.pattern:
            out["propertyNames"] = {"pattern": f"^{self.key.pattern}$"}
        if self.min_items:
            out["minProperties"] = self.min_items
        return out


@dataclass
class Field:
    node: Node
    required: bool = False
    default: Any = None
    #: Called with the default to make a fresh one (lists, dicts).
    default_factory: Callable[[], Any] | None = None
    description: str = ""


@dataclass
class Obj(Node):
    """A mapping with known keys; unknown keys are errors with a "did you mean"."""

    fields: dict[str, Field]
    allow_extra: bool = False
    description: str = ""

    def check(self, value: Any, path: str, errors: Errors) -> Any:
        if value is None and not any(f.required for f in self.fields.values()):
            value = {}
        if not isinstance(value, Mapping):
            errors.append((path or "(top level)", f"must be a mapping, got {_type_name(value)}"))
            return _MISSING
        out: dict[str, Any] = {}
        for key in value:
            if key not in self.fields and not self.allow_extra:
                close = difflib.get_close_matches(str(key), list(self.fields), n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                errors.append((join(path, str(key)), f"unknown key{hint}"))
        for name, f in self.fields.items():
            sub = join(path, name)
            if name not in value or value[name] is None:
                if f.required:
                    errors.append((sub, "is required"))
                else:
                    out[name] = f.default_factory() if f.default_factory else f.default
                continue
            converted = f.node.check(value[name], sub, errors)
            if converted is not _MISSING:
                out[name] = converted
        if self.allow_extra:
            for key in value:
                if key not in self.fields:
                    out[key] = value[key]
        return out

    def json_schema(self) -> dict[str, Any]:
        props = {}
        for name, f in self.fields.items():
            prop = f.node.json_schema()
            if f.description:
                prop["description"] = f.description
            if not f.required and f.default is not None:
                prop["default"] = f.default
            props[name] = prop
        out: dict[str, Any] = {
            "type": "object",
            "properties": props,
            "additionalProperties": self.allow_extra,
        }
        required = [n for n, f in self.fields.items() if f.required]
        if required:
            out["required"] = required
        if self.description:
            out["description"] = self.description
        return out


MISSING = _MISSING
