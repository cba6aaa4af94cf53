"""The ``gcp`` provider: Compute Engine instances through google-cloud-compute.

Provider settings::

    provider:
      type: gcp
      project_id: my-project
      availability_zone: us-central1-a

A node type's ``node_config`` is an ``Instance`` resource in the
google-cloud-compute field names (``machine_type``, ``disks``,
``network_interfaces``, ``metadata``, ``scheduling``...); a bare machine type
such as ``n2-standard-8`` is expanded to its zone URL, and without
``network_interfaces`` the node joins the project's default network.
Credentials are the Application Default Credentials.

Tags become instance labels. Labels allow only lowercase letters, digits,
``-`` and ``_``, so other characters are escaped reversibly (``_`` becomes
``__``, any other character ``_xx`` in hex): a node type ``GPU.big`` is the
label value ``_47_50_55_2ebig`` and reads back as ``GPU.big``.
"""

# Cloud SDKs raise many unrelated exception classes; each call site translates
# whatever it gets into a NodeProviderError at this boundary.
# ruff: noqa: BLE001

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from shoal.autoscaler._errors import NodeLaunchError, NodeProviderError
from shoal.autoscaler._registry import require_module
from shoal.autoscaler.node_provider import BOOT_SETTINGS, TAG_CLUSTER_NAME, NodeProvider, ProviderNode
from shoal.autoscaler.providers._util import boot_setting_errors, deep_merge, node_name, require_keys

__all__ = ["GCPNodeProvider", "encode_label", "decode_label", "categorize_gcp_error"]

_KNOWN = {"type", "project_id", "availability_zone", "region", "operation_timeout_s"} | BOOT_SETTINGS
_LIVE = {"PROVISIONING", "STAGING", "RUNNING", "REPAIRING"}
_PLAIN = re.compile(r"[a-z0-9-]")


def encode_label(text: str) -> str:
    """A label-safe, reversible spelling of ``text``."""
    out = []
    for ch in text:
        if ch == "_":
            out.append("__")
        elif _PLAIN.fullmatch(ch):
            out.append(ch)
        elif ord(ch) < 256:
            out.append(f"_{ord(ch):02x}")
        else:
            raise ValueError(f"cannot store {text!r} in a GCE label (non-Latin-1 character)")
    encoded = "".join(out)
    if len(encoded) > 63:
        raise ValueError(f"{text!r} is too long for a GCE label ({len(encoded)} > 63 characters encoded)")
    return encoded


def decode_label(text: str) -> str:
    out, i = [], 0
    while i < len(text):
        ch = text[i]
        if ch == "_" and text[i + 1 : i + 2] == "_":
            out.append("_")
            i += 2
        elif ch == "_" and i + 2 < len(text) and re.fullmatch(r"[0-9a-f]{2}", text[i + 1 : i + 3]):
            out.append(chr(int(text[i + 1 : i + 3], 16)))
            i += 3
        else:
            out.append(ch)
            i += 1
    return "".join(out)


def categorize_gcp_error(e: BaseException) -> str:
    """The launch error category of a google-api-core error (duck-typed: ``code`` and message)."""
    text = str(e).upper()
    code = getattr(e, "code", None)
    code = code if isinstance(code, int) else None
    if "QUOTA" in text or code == 429:
        return "quota"
    if "RESOURCE_POOL_EXHAUSTED" in text or "STOCKOUT" in text or "UNAVAILABLE" in text:
        return "capacity"
    if code in (401, 403):
        return "auth"
    if code in (400, 404, 409, 412):
        return "config"
    return "transient"


class GCPNodeProvider(NodeProvider):
    provider_name = "gcp"

    def __init__(self, provider_config: Mapping[str, Any], cluster_name: str, *, client: Any = None) -> None:
        super().__init__(provider_config, cluster_name)
        self.project = provider_config["project_id"]
        self.zone = provider_config["availability_zone"]
        self.operation_timeout_s = float(provider_config.get("operation_timeout_s", 300))
        if client is None:
            compute_v1 = require_module("google.cloud.compute_v1", "gcp")
            client = compute_v1.InstancesClient()
        self._client = client

    @classmethod
    def validate_config(cls, provider_config, node_types):
        errors = require_keys(provider_config, {"project_id": str, "availability_zone": str}, "gcp")
        for key in provider_config:
            if key not in _KNOWN:
                errors.append((f"provider.{key}", "unknown key for the 'gcp' provider"))
        errors += boot_setting_errors(provider_config)
        for name, nc in node_types.items():
            if "machine_type" not in nc:
                errors.append((f"available_node_types.{name}.node_config.machine_type", "is required by GCE"))
            try:
                encode_label(name)
            except ValueError as e:
                errors.append((f"available_node_types.{name}", str(e)))
        return errors

    def _labels(self, tags: Mapping[str, str]) -> dict[str, str]:
        try:
            return {encode_label(k): encode_label(v) for k, v in tags.items()}
        except ValueError as e:
            raise NodeLaunchError(f"gcp: {e}", "config") from None

    def _wait(self, op: Any) -> None:
        result = getattr(op, "result", None)
        if callable(result):
            result(timeout=self.operation_timeout_s)

    @staticmethod
    def _err(e: Exception, what: str, launch: bool) -> NodeProviderError:
        cls = NodeLaunchError if launch else NodeProviderError
        return cls(f"gcp: {what} failed: {type(e).__name__}: {e}", categorize_gcp_error(e))

    def with_boot_script(self, node_config: Mapping[str, Any], script: str) -> dict[str, Any]:
        """The script as the instance's ``startup-script`` metadata item."""
        metadata = dict(node_config.get("metadata") or {})
        items = [dict(i) for i in metadata.get("items") or []]
        if any(i.get("key") == "startup-script" for i in items):
            raise NodeLaunchError(
                "gcp: node_config.metadata already has a startup-script; `shoal up` needs it for its boot script",
                "config",
            )
        metadata["items"] = [*items, {"key": "startup-script", "value": script}]
        return {**node_config, "metadata": metadata}

    def create_nodes(self, node_type, node_config, tags, count, *, resources=None) -> list[str]:
        if count <= 0:
            return []
        labels = self._labels(self._full_tags(node_type, tags))
        body = dict(node_config)
        mt = str(body.get("machine_type", ""))
        if mt and "/" not in mt:
            body["machine_type"] = f"zones/{self.zone}/machineTypes/{mt}"
        body.setdefault("network_interfaces", [{"network": "global/networks/default"}])
        ops, names = [], []
        try:
            for _ in range(count):
                name = node_name(self.cluster_name, node_type)
                instance = deep_merge(body, {"name": name, "labels": labels})
                ops.append(self._client.insert(project=self.project, zone=self.zone, instance_resource=instance))
                names.append(name)
            for op in ops:
                self._wait(op)
        except Exception as e:
            if names:  # remove what did get created, so a failed launch leaves nothing behind
                try:
                    self.terminate_nodes(names)
                except NodeProviderError:
                    pass
            raise self._err(e, f"creating {count} x {node_type}", launch=True) from None
        return names

    def _list(self) -> list[Any]:
        flt = f'labels.{encode_label(TAG_CLUSTER_NAME)} = "{encode_label(self.cluster_name)}"'
        return list(self._client.list(project=self.project, zone=self.zone, filter=flt))

    def non_terminated_nodes(self, tag_filters=None) -> list[ProviderNode]:
        try:
            instances = self._list()
        except Exception as e:
            raise self._err(e, "listing instances", launch=False) from None
        out = []
        for inst in instances:
            if getattr(inst, "status", "") not in _LIVE:
                continue
            tags = {decode_label(k): decode_label(v) for k, v in dict(inst.labels or {}).items()}
            if tags.get(TAG_CLUSTER_NAME) != self.cluster_name or not self._matches(tags, tag_filters):
                continue
            internal = external = None
            nics = list(getattr(inst, "network_interfaces", None) or [])
            if nics:
                internal = getattr(nics[0], "network_i_p", None) or None
                access = list(getattr(nics[0], "access_configs", None) or [])
                if access:
                    external = getattr(access[0], "nat_i_p", None) or None
            out.append(ProviderNode(inst.name, tags, internal_ip=internal, external_ip=external))
        return out

    def set_node_tags(self, node_id: str, tags: Mapping[str, str]) -> None:
        try:
            inst = self._client.get(project=self.project, zone=self.zone, instance=node_id)
            labels = {**dict(inst.labels or {}), **self._labels(tags)}
            op = self._client.set_labels(
                project=self.project,
                zone=self.zone,
                instance=node_id,
                instances_set_labels_request_resource={
                    "labels": labels,
                    "label_fingerprint": inst.label_fingerprint,
                },
            )
            self._wait(op)
        except NodeProviderError:
            raise
        except Exception as e:
            raise self._err(e, f"labelling {node_id}", launch=False) from None

    def terminate_nodes(self, node_ids: Sequence[str]) -> None:
        ops = []
        for name in node_ids:
            try:
                ops.append(self._client.delete(project=self.project, zone=self.zone, instance=name))
            except Exception as e:
                if getattr(e, "code", None) != 404:
                    raise self._err(e, f"deleting {name}", launch=False) from None
        for op in ops:
            try:
                self._wait(op)
            except Exception as e:
                if getattr(e, "code", None) != 404:
                    raise self._err(e, "deleting instances", launch=False) from None
