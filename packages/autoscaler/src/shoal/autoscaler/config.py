"""Cluster config files: schema, validation and the typed result.

A cluster config is YAML in the shape Ray's cluster launcher uses::

    cluster_name: demo
    max_workers: 10
    upscaling_speed: 1.0
    idle_timeout_minutes: 5
    provider: {type: aws, region: us-west-2}
    head_node_type: head
    available_node_types:
      head: {resources: {CPU: 4}, node_config: {InstanceType: m5.xlarge, ImageId: ami-...}}
      gpu_worker:
        resources: {CPU: 8, GPU: 1}
        node_config: {InstanceType: g4dn.2xlarge, ImageId: ami-...}
        min_workers: 0
        max_workers: 4

Every problem is reported at once, each naming the path of the bad field:
``available_node_types.gpu_worker.max_workers: must be >= min_workers (5), got 4``.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shoal.autoscaler._errors import (
    ClusterConfigError,
    NodeProviderNotFoundError,
    NodeProviderUnavailableError,
)
from shoal.autoscaler._resources import SIZE_RESOURCES, normalize_shape
from shoal.autoscaler._schema import (
    MISSING,
    AnyValue,
    Errors,
    Field,
    Int,
    ListOf,
    MapOf,
    Node,
    Number,
    Obj,
    Str,
    join,
)

__all__ = [
    "CLUSTER_SCHEMA",
    "ClusterConfig",
    "NodeTypeConfig",
    "cluster_config_json_schema",
    "load_cluster_config",
    "validate_cluster_config",
]

_NAME_PATTERN = r"[a-z][a-z0-9-]{0,38}[a-z0-9]|[a-z]"
_NODE_TYPE_PATTERN = r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,62}"


class _Resources(Node):
    """Resource amounts: numbers >= 0; memory sizes may be written as ``"4GiB"``."""

    def check(self, value: Any, path: str, errors: Errors) -> Any:
        if not isinstance(value, Mapping):
            errors.append((path, f"must be a mapping of resource name to amount, got {type(value).__name__}"))
            return MISSING
        out: dict[str, float] = {}
        ok = True
        for k, v in value.items():
            try:
                out.update(normalize_shape({k: v}, what="resources"))
            except (TypeError, ValueError) as e:
                ok = False
                msg = str(e).split(": ", 1)[-1] if ": " in str(e) else str(e)
                errors.append((join(path, str(k)), msg.replace(f"resources[{k!r}] ", "")))
        return out if ok else MISSING

    def json_schema(self) -> dict[str, Any]:
        size = {"oneOf": [{"type": "number", "minimum": 0}, {"type": "string"}]}
        return {
            "type": "object",
            "additionalProperties": {"type": "number", "minimum": 0},
            "properties": {name: size for name in sorted(SIZE_RESOURCES)},
        }


_NODE_TYPE_NAME = Str(pattern=_NODE_TYPE_PATTERN, pattern_help="use letters, digits, '_', '.' and '-'")
_commands = Field(ListOf(Str()), default_factory=list)

NODE_TYPE_SCHEMA = Obj(
    {
        "resources": Field(_Resources(), required=True, description="what one node offers to tasks"),
        "node_config": Field(
            MapOf(AnyValue()),
            default_factory=dict,
            description="passed to the provider's create call (instance type, image, pod template...)",
        ),
        "min_workers": Field(Int(minimum=0), default=0),
        "max_workers": Field(
            Int(minimum=0), description="defaults to the top-level max_workers (0 for the head node type)"
        ),
        "labels": Field(MapOf(Str()), default_factory=dict),
        "worker_setup_commands": Field(ListOf(Str()), description="overrides the top-level ones for this type"),
    },
    description="one kind of machine the autoscaler may launch",
)

CLUSTER_SCHEMA = Obj(
    {
        "cluster_name": Field(
            Str(
                pattern=_NAME_PATTERN,
                pattern_help="use 1-40 lowercase letters, digits and '-', starting with a letter "
                "(the name goes into every cloud's resource names and labels)",
            ),
            required=True,
        ),
        "max_workers": Field(Int(minimum=0), description="cap on worker nodes over all types"),
        "upscaling_speed": Field(Number(exclusive_minimum=0), default=1.0),
        "idle_timeout_minutes": Field(Number(minimum=0), default=5.0),
        "provider": Field(
            Obj({"type": Field(Str(min_length=1), required=True)}, allow_extra=True),
            required=True,
            description="the node provider (type) and its settings",
        ),
        "available_node_types": Field(
            MapOf(
                NODE_TYPE_SCHEMA,
                key=Str(pattern=_NODE_TYPE_PATTERN, pattern_help="use letters, digits, '_', '.', '-'"),
                min_items=1,
            ),
            required=True,
        ),
        "head_node_type": Field(Str(min_length=1), required=True),
        "initialization_commands": _commands,
        "setup_commands": _commands,
        "head_setup_commands": _commands,
        "worker_setup_commands": _commands,
        "head_start_commands": _commands,
        "worker_start_commands": _commands,
    },
    description="a shoal cluster: where its nodes come from and how it scales",
)


def cluster_config_json_schema() -> dict[str, Any]:
    """The config schema as JSON Schema (for editors and CI linters)."""
    out = CLUSTER_SCHEMA.json_schema()
    out["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    out["title"] = "shoal cluster config"
    return out


@dataclass(frozen=True)
class NodeTypeConfig:
    """One entry of ``available_node_types``."""

    name: str
    resources: dict[str, float]
    node_config: dict[str, Any] = field(default_factory=dict)
    min_workers: int = 0
    max_workers: int = 0
    labels: dict[str, str] = field(default_factory=dict)
    worker_setup_commands: list[str] | None = None


@dataclass(frozen=True)
class ClusterConfig:
    """A validated cluster config."""

    cluster_name: str
    provider: dict[str, Any]
    available_node_types: dict[str, NodeTypeConfig]
    head_node_type: str
    max_workers: int
    upscaling_speed: float = 1.0
    idle_timeout_minutes: float = 5.0
    initialization_commands: list[str] = field(default_factory=list)
    setup_commands: list[str] = field(default_factory=list)
    head_setup_commands: list[str] = field(default_factory=list)
    worker_setup_commands: list[str] = field(default_factory=list)
    head_start_commands: list[str] = field(default_factory=list)
    worker_start_commands: list[str] = field(default_factory=list)
    #: Where the config came from (a path, or ``<dict>``), for messages.
    source: str = "<dict>"

    @property
    def provider_type(self) -> str:
        return str(self.provider["type"])

    @property
    def idle_timeout_s(self) -> float:
        return self.idle_timeout_minutes * 60.0

    @property
    def head_type(self) -> NodeTypeConfig:
        return self.available_node_types[self.head_node_type]


def _format_errors(source: str, errors: Errors) -> str:
    lines = [f"{source}: invalid cluster config ({len(errors)} problem{'s' if len(errors) != 1 else ''}):"]
    lines += [f"  {path}: {msg}" for path, msg in errors]
    return "\n".join(lines)


def _provider_errors(provider: Mapping[str, Any], node_configs: dict[str, dict[str, Any]]) -> Errors:
    from shoal.autoscaler._registry import load_node_provider_class

    try:
        cls = load_node_provider_class(provider["type"])
    except NodeProviderNotFoundError as e:
        return [("provider.type", str(e))]
    except NodeProviderUnavailableError:
        # Known but not importable here: its own checks run where it is installed.
        return []
    return list(cls.validate_config(provider, node_configs))


def validate_cluster_config(raw: Any, source: str = "<dict>") -> ClusterConfig:
    """Check a parsed config mapping and return it typed, defaults filled in.

    Raises ClusterConfigError listing every problem as ``path: message``.
    """
    errors: Errors = []
    data = CLUSTER_SCHEMA.check(raw, "", errors)
    if data is MISSING:
        raise ClusterConfigError(_format_errors(source, errors), errors)

    types = data.get("available_node_types") or {}
    cluster_max = data.get("max_workers")
    head = data.get("head_node_type")
    if head is not None and types and head not in types:
        close = difflib.get_close_matches(head, list(types), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        errors.append(("head_node_type", f"{head!r} is not one of available_node_types ({', '.join(types)}){hint}"))
    node_types: dict[str, NodeTypeConfig] = {}
    for name, t in types.items():
        # A field that failed its own check is absent from ``t``; skip checks that need it.
        path = join("available_node_types", name)
        min_w = t.get("min_workers", 0)
        max_w = t.get("max_workers", -1)
        if max_w is None and name == head:
            max_w = 0  # the head type launches no extra workers unless asked to
        if max_w is None:
            if cluster_max is None:
                errors.append((join(path, "max_workers"), "is required when the top-level max_workers is not set"))
                continue
            max_w = max(cluster_max, min_w)
        elif max_w >= 0 and max_w < min_w:
            msg = f"must be >= min_workers ({min_w}), got {max_w}"
            errors.append((join(path, "max_workers"), msg))
        if name != head and "resources" in t and not t["resources"]:
            errors.append((join(path, "resources"), "a worker type must offer at least one resource"))
        if "resources" not in t or "node_config" not in t or max_w < 0 or "min_workers" not in t:
            continue
        node_types[name] = NodeTypeConfig(
            name=name,
            resources=t["resources"],
            node_config=t["node_config"],
            min_workers=min_w,
            max_workers=max_w,
            labels=t.get("labels", {}),
            worker_setup_commands=t.get("worker_setup_commands"),
        )
    total_min = sum(t.min_workers for t in node_types.values())
    if cluster_max is not None and total_min > cluster_max:
        errors.append(
            (
                "max_workers",
                f"must be >= the sum of min_workers over node types ({total_min}), got {cluster_max}",
            )
        )
    if cluster_max is None:
        cluster_max = sum(t.max_workers for t in node_types.values())
    if isinstance(data.get("provider"), Mapping) and "type" in data["provider"]:
        errors += _provider_errors(data["provider"], {n: dict(t.node_config) for n, t in node_types.items()})

    if errors:
        raise ClusterConfigError(_format_errors(source, errors), errors)
    return ClusterConfig(
        cluster_name=data["cluster_name"],
        provider=dict(data["provider"]),
        available_node_types=node_types,
        head_node_type=head,
        max_workers=int(cluster_max),
        upscaling_speed=data["upscaling_speed"],
        idle_timeout_minutes=data["idle_timeout_minutes"],
        initialization_commands=data["initialization_commands"],
        setup_commands=data["setup_commands"],
        head_setup_commands=data["head_setup_commands"],
        worker_setup_commands=data["worker_setup_commands"],
        head_start_commands=data["head_start_commands"],
        worker_start_commands=data["worker_start_commands"],
        source=source,
    )


def load_cluster_config(path: str | Path, overrides: Mapping[str, Any] | None = None) -> ClusterConfig:
    """Read and validate a YAML cluster config; ``overrides`` replace top-level keys (e.g. ``cluster_name``).

    Raises ClusterConfigError for an unreadable file, bad YAML (with line and
    column) or an invalid config.
    """
    import yaml

    p = Path(path)
    try:
        text = p.read_text()
    except OSError as e:
        raise ClusterConfigError(f"{p}: cannot read cluster config: {e.strerror or e}") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(e, "problem", None) or str(e)
        raise ClusterConfigError(f"{p}: not valid YAML{where}: {problem}", [("(file)", f"{problem}{where}")]) from None
    if overrides:
        if not isinstance(raw, dict):
            raw = {}
        raw = {**raw, **overrides}
    return validate_cluster_config(raw, source=str(p))
