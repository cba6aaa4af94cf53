"""Small helpers shared by the built-in providers."""

from __future__ import annotations

import copy
import re
import uuid
from collections.abc import Mapping
from typing import Any

__all__ = ["boot_setting_errors", "deep_merge", "node_name", "require_keys"]


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` with ``override`` merged in: mappings merge recursively, everything else is replaced."""
    out = copy.deepcopy(dict(base))
    for k, v in override.items():
        if isinstance(v, Mapping) and isinstance(out.get(k), Mapping):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def node_name(cluster_name: str, node_type: str, max_len: int = 63) -> str:
    """A unique, DNS-safe machine name: ``<cluster>-<type>-<8 hex>``."""
    safe_type = re.sub(r"[^a-z0-9-]+", "-", node_type.lower()).strip("-") or "node"
    suffix = uuid.uuid4().hex[:8]
    head = f"{cluster_name}-{safe_type}"[: max_len - len(suffix) - 1].rstrip("-")
    return f"{head}-{suffix}"


def require_keys(
    provider_config: Mapping[str, Any], keys: Mapping[str, type | tuple[type, ...]], provider: str
) -> list[tuple[str, str]]:
    """Errors for missing or mistyped required provider settings."""
    errors = []
    for key, kind in keys.items():
        if key not in provider_config or provider_config[key] in (None, ""):
            errors.append((f"provider.{key}", f"is required by the {provider!r} provider"))
        elif not isinstance(provider_config[key], kind):
            errors.append((f"provider.{key}", f"must be a {getattr(kind, '__name__', kind)}"))
    return errors


def boot_setting_errors(provider_config: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Errors in the settings ``shoal up`` reads on providers started through boot scripts."""
    errors = []
    port = provider_config.get("head_port")
    if port is not None and (isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536):
        errors.append(("provider.head_port", f"must be a port number (1-65535), got {port!r}"))
    internal = provider_config.get("use_internal_ips")
    if internal is not None and not isinstance(internal, bool):
        errors.append(("provider.use_internal_ips", f"must be true or false, got {internal!r}"))
    timeout = provider_config.get("head_start_timeout_s")
    if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0):
        errors.append(("provider.head_start_timeout_s", f"must be a positive number of seconds, got {timeout!r}"))
    return errors
