"""The ``azure`` provider: virtual machines through azure-mgmt-compute.

Provider settings::

    provider:
      type: azure
      subscription_id: 00000000-0000-0000-0000-000000000000
      resource_group: shoal-rg
      location: westus2
      subnet_id: /subscriptions/.../subnets/default   # used when node_config has no network_profile

A node type's ``node_config`` is a ``VirtualMachine`` resource in the SDK's
field names (``hardware_profile``, ``storage_profile``, ``os_profile``,
``network_profile``...). Without a ``network_profile`` the VM gets one NIC on
``subnet_id``, created and deleted with the VM by the compute service.
Credentials come from ``DefaultAzureCredential`` (environment, managed
identity, Azure CLI login); IP addresses are read through
azure-mgmt-network.
"""

# Cloud SDKs raise many unrelated exception classes; each call site translates
# whatever it gets into a NodeProviderError at this boundary.
# ruff: noqa: BLE001

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from typing import Any

from shoal.autoscaler._errors import NodeLaunchError, NodeProviderError
from shoal.autoscaler._registry import require_module
from shoal.autoscaler.node_provider import BOOT_SETTINGS, TAG_CLUSTER_NAME, NodeProvider, ProviderNode
from shoal.autoscaler.providers._util import boot_setting_errors, deep_merge, node_name, require_keys

__all__ = ["AzureNodeProvider", "categorize_azure_error"]

_KNOWN = {"type", "subscription_id", "resource_group", "location", "subnet_id", "network_api_version"} | BOOT_SETTINGS
_GONE = {"Deleting", "Deleted"}


def categorize_azure_error(e: BaseException) -> str:
    """The launch error category of an azure-core error (duck-typed: ``status_code``, ``error.code``)."""
    code = str(getattr(getattr(e, "error", None), "code", "") or "")
    status = getattr(e, "status_code", None)
    text = f"{code} {e}".lower()
    if "quota" in text:
        return "quota"
    if code in ("SkuNotAvailable", "AllocationFailed", "ZonalAllocationFailed", "OverconstrainedAllocationRequest"):
        return "capacity"
    if type(e).__name__ == "ClientAuthenticationError" or status in (401, 403) or code == "AuthorizationFailed":
        return "auth"
    if status in (400, 404, 409) or code.startswith("Invalid"):
        return "config"
    return "transient"


def _name_from_id(resource_id: str) -> tuple[str, str]:
    """(resource group, name) from an ARM resource id."""
    parts = resource_id.strip("/").split("/")
    lower = [p.lower() for p in parts]
    rg = parts[lower.index("resourcegroups") + 1] if "resourcegroups" in lower else ""
    return rg, parts[-1]


class AzureNodeProvider(NodeProvider):
    provider_name = "azure"

    def __init__(
        self,
        provider_config: Mapping[str, Any],
        cluster_name: str,
        *,
        compute_client: Any = None,
        network_client: Any = None,
    ) -> None:
        super().__init__(provider_config, cluster_name)
        self.resource_group = provider_config["resource_group"]
        self.location = provider_config["location"]
        if compute_client is None or network_client is None:
            identity = require_module("azure.identity", "azure")
            credential = identity.DefaultAzureCredential()
            sub = provider_config["subscription_id"]
            if compute_client is None:
                compute = require_module("azure.mgmt.compute", "azure")
                compute_client = compute.ComputeManagementClient(credential, sub)
            if network_client is None:
                network = require_module("azure.mgmt.network", "azure")
                network_client = network.NetworkManagementClient(credential, sub)
        self._compute = compute_client
        self._network = network_client
        self._ips: dict[str, tuple[str | None, str | None]] = {}

    @classmethod
    def validate_config(cls, provider_config, node_types):
        required = {"subscription_id": str, "resource_group": str, "location": str}
        errors = require_keys(provider_config, required, "azure")
        for key in provider_config:
            if key not in _KNOWN:
                errors.append((f"provider.{key}", "unknown key for the 'azure' provider"))
        errors += boot_setting_errors(provider_config)
        for name, nc in node_types.items():
            path = f"available_node_types.{name}.node_config"
            if "hardware_profile" not in nc:
                errors.append((f"{path}.hardware_profile", "is required by Azure (vm_size)"))
            if "network_profile" not in nc and not provider_config.get("subnet_id"):
                errors.append((f"{path}.network_profile", "is required when provider.subnet_id is not set"))
        return errors

    @staticmethod
    def _err(e: Exception, what: str, launch: bool) -> NodeProviderError:
        cls = NodeLaunchError if launch else NodeProviderError
        return cls(f"azure: {what} failed: {type(e).__name__}: {e}", categorize_azure_error(e))

    def _params(self, vm_name: str, node_config: Mapping[str, Any], tags: dict[str, str]) -> dict[str, Any]:
        body = deep_merge(node_config, {"location": self.location, "tags": tags})
        if "network_profile" not in body:
            body["network_profile"] = {
                "network_api_version": self.provider_config.get("network_api_version", "2022-11-01"),
                "network_interface_configurations": [
                    {
                        "name": f"{vm_name}-nic",
                        "primary": True,
                        "delete_option": "Delete",
                        "ip_configurations": [
                            {"name": "ipconfig1", "primary": True, "subnet": {"id": self.provider_config["subnet_id"]}}
                        ],
                    }
                ],
            }
        return body

    def with_boot_script(self, node_config: Mapping[str, Any], script: str) -> dict[str, Any]:
        """The script as the VM's custom data (base64, which cloud-init runs at first boot)."""
        os_profile = dict(node_config.get("os_profile") or {})
        if os_profile.get("custom_data"):
            raise NodeLaunchError(
                "azure: node_config.os_profile.custom_data is set; `shoal up` needs it for its boot script", "config"
            )
        os_profile["custom_data"] = base64.b64encode(script.encode()).decode()
        return {**node_config, "os_profile": os_profile}

    def create_nodes(self, node_type, node_config, tags, count, *, resources=None) -> list[str]:
        if count <= 0:
            return []
        full = self._full_tags(node_type, tags)
        pollers, names = [], []
        try:
            for _ in range(count):
                name = node_name(self.cluster_name, node_type, max_len=64)
                params = self._params(name, node_config, full)
                pollers.append(self._compute.virtual_machines.begin_create_or_update(self.resource_group, name, params))
                names.append(name)
            for p in pollers:
                p.result()
        except Exception as e:
            if names:
                try:
                    self.terminate_nodes(names)
                except NodeProviderError:
                    pass
            raise self._err(e, f"creating {count} x {node_type}", launch=True) from None
        return names

    def _ip_of(self, vm: Any) -> tuple[str | None, str | None]:
        if vm.name in self._ips:
            return self._ips[vm.name]
        nics = list(getattr(getattr(vm, "network_profile", None), "network_interfaces", None) or [])
        if not nics:
            return None, None
        rg, nic_name = _name_from_id(nics[0].id)
        nic = self._network.network_interfaces.get(rg or self.resource_group, nic_name)
        configs = list(getattr(nic, "ip_configurations", None) or [])
        internal = external = None
        if configs:
            internal = getattr(configs[0], "private_ip_address", None)
            pip = getattr(configs[0], "public_ip_address", None)
            if pip is not None and getattr(pip, "id", None):
                prg, pname = _name_from_id(pip.id)
                external = getattr(
                    self._network.public_ip_addresses.get(prg or self.resource_group, pname), "ip_address", None
                )
        if internal:  # cache only once an address is assigned
            self._ips[vm.name] = (internal, external)
        return internal, external

    def non_terminated_nodes(self, tag_filters=None) -> list[ProviderNode]:
        out = []
        try:
            for vm in self._compute.virtual_machines.list(self.resource_group):
                tags = dict(getattr(vm, "tags", None) or {})
                if tags.get(TAG_CLUSTER_NAME) != self.cluster_name or not self._matches(tags, tag_filters):
                    continue
                if getattr(vm, "provisioning_state", None) in _GONE:
                    continue
                internal, external = self._ip_of(vm)
                out.append(ProviderNode(vm.name, tags, internal_ip=internal, external_ip=external))
        except Exception as e:
            raise self._err(e, "listing virtual machines", launch=False) from None
        live = {n.node_id for n in out}
        for name in list(self._ips):
            if name not in live:
                del self._ips[name]
        return out

    def set_node_tags(self, node_id: str, tags: Mapping[str, str]) -> None:
        try:
            vm = self._compute.virtual_machines.get(self.resource_group, node_id)
            merged = {**dict(vm.tags or {}), **tags}
            self._compute.virtual_machines.begin_update(self.resource_group, node_id, {"tags": merged}).result()
        except Exception as e:
            raise self._err(e, f"tagging {node_id}", launch=False) from None

    def terminate_nodes(self, node_ids: Sequence[str]) -> None:
        pollers = []
        for name in node_ids:
            try:
                pollers.append(self._compute.virtual_machines.begin_delete(self.resource_group, name))
            except Exception as e:
                if getattr(e, "status_code", None) != 404:
                    raise self._err(e, f"deleting {name}", launch=False) from None
        for p in pollers:
            try:
                p.result()
            except Exception as e:
                if getattr(e, "status_code", None) != 404:
                    raise self._err(e, "deleting virtual machines", launch=False) from None
        for name in node_ids:
            self._ips.pop(name, None)
