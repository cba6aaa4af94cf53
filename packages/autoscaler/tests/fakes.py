"""Stand-ins for the cloud SDK clients the providers call, shaped like the real ones.

Each fake keeps state, checks what the real service would reject (label
syntax, names, required fields, fingerprints) and raises errors shaped like
the SDK's (``code``/``status_code``/``status`` attributes), so the providers'
requests and error translation are exercised without the libraries.
"""

from __future__ import annotations

import itertools
import re
from types import SimpleNamespace
from typing import Any

# -- Google Compute Engine (google-cloud-compute InstancesClient) ------------------------


class FakeGoogleAPIError(Exception):
    """Like google.api_core.exceptions.GoogleAPICallError: ``code`` is the HTTP status."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"{code} {message}")
        self.code = code


class _Op:
    def __init__(self, error: Exception | None = None) -> None:
        self._error = error

    def result(self, timeout: float | None = None) -> None:
        if self._error is not None:
            raise self._error


_GCE_KEY = re.compile(r"[a-z][a-z0-9_-]{0,62}")
_GCE_VALUE = re.compile(r"[a-z0-9_-]{0,63}")
_GCE_NAME = re.compile(r"[a-z]([-a-z0-9]{0,61}[a-z0-9])?")


class FakeInstancesClient:
    def __init__(self) -> None:
        self.instances: dict[tuple[str, str, str], SimpleNamespace] = {}
        self._ips = itertools.count(2)
        self._fp = itertools.count(1)
        #: Set to an exception to fail the next insert's operation.
        self.fail_next_insert: Exception | None = None
        self.calls: list[str] = []

    def insert(self, *, project: str, zone: str, instance_resource: dict[str, Any]) -> _Op:
        self.calls.append("insert")
        if self.fail_next_insert is not None:
            err, self.fail_next_insert = self.fail_next_insert, None
            return _Op(err)
        name = instance_resource.get("name", "")
        if not _GCE_NAME.fullmatch(name):
            raise FakeGoogleAPIError(400, f"Invalid value for field 'resource.name': '{name}'")
        if not str(instance_resource.get("machine_type", "")).startswith(f"zones/{zone}/machineTypes/"):
            raise FakeGoogleAPIError(400, "Invalid value for field 'resource.machineType'")
        for k, v in instance_resource.get("labels", {}).items():
            if not _GCE_KEY.fullmatch(k) or not _GCE_VALUE.fullmatch(v):
                raise FakeGoogleAPIError(400, f"Invalid value for field 'resource.labels': {k}={v}")
        if (project, zone, name) in self.instances:
            raise FakeGoogleAPIError(409, f"The resource '{name}' already exists")
        ip = next(self._ips)
        nic = SimpleNamespace(
            network_i_p=f"10.128.0.{ip}",
            access_configs=[SimpleNamespace(nat_i_p=f"34.1.0.{ip}")],
        )
        self.instances[(project, zone, name)] = SimpleNamespace(
            name=name,
            labels=dict(instance_resource.get("labels", {})),
            metadata=dict(instance_resource.get("metadata") or {}),
            status="PROVISIONING",
            network_interfaces=[nic],
            label_fingerprint=f"fp{next(self._fp)}",
        )
        return _Op()

    def list(self, *, project: str, zone: str, filter: str = "") -> list[SimpleNamespace]:
        self.calls.append("list")
        m = re.fullmatch(r'labels\.([a-z0-9_-]+) = "([a-z0-9_-]*)"', filter) if filter else None
        if filter and m is None:
            raise FakeGoogleAPIError(400, f"Invalid list filter expression: {filter}")
        out = []
        for (p, z, _), inst in self.instances.items():
            if p != project or z != zone:
                continue
            if m is not None and inst.labels.get(m.group(1)) != m.group(2):
                continue
            out.append(inst)
            if inst.status == "PROVISIONING":
                inst.status = "RUNNING"  # boots by the next look
        return out

    def get(self, *, project: str, zone: str, instance: str) -> SimpleNamespace:
        try:
            return self.instances[(project, zone, instance)]
        except KeyError:
            raise FakeGoogleAPIError(404, f"The resource '{instance}' was not found") from None

    def set_labels(self, *, project, zone, instance, instances_set_labels_request_resource) -> _Op:
        inst = self.get(project=project, zone=zone, instance=instance)
        req = instances_set_labels_request_resource
        if req["label_fingerprint"] != inst.label_fingerprint:
            raise FakeGoogleAPIError(412, "Labels fingerprint either invalid or resource labels have changed")
        inst.labels = dict(req["labels"])
        inst.label_fingerprint = f"fp{next(self._fp)}"
        return _Op()

    def delete(self, *, project: str, zone: str, instance: str) -> _Op:
        self.calls.append("delete")
        if (project, zone, instance) not in self.instances:
            raise FakeGoogleAPIError(404, f"The resource '{instance}' was not found")
        del self.instances[(project, zone, instance)]
        return _Op()


# -- Azure (azure-mgmt-compute / azure-mgmt-network) ---------------------------------------


class FakeHttpResponseError(Exception):
    """Like azure.core.exceptions.HttpResponseError: ``status_code`` and ``error.code``."""

    def __init__(self, status_code: int, code: str, message: str) -> None:
        super().__init__(f"({code}) {message}")
        self.status_code = status_code
        self.error = SimpleNamespace(code=code, message=message)


class _Poller:
    def __init__(self, value: Any = None, error: Exception | None = None) -> None:
        self._value, self._error = value, error

    def result(self) -> Any:
        if self._error is not None:
            raise self._error
        return self._value


_AZ_NAME = re.compile(r"[A-Za-z0-9]([A-Za-z0-9-]{0,62}[A-Za-z0-9])?")


class _FakeVMs:
    def __init__(self, owner: FakeAzure) -> None:
        self.owner = owner
        self.vms: dict[tuple[str, str], SimpleNamespace] = {}
        self.fail_next_create: Exception | None = None

    def begin_create_or_update(self, resource_group_name: str, vm_name: str, parameters: dict) -> _Poller:
        if self.fail_next_create is not None:
            err, self.fail_next_create = self.fail_next_create, None
            return _Poller(error=err)
        if not _AZ_NAME.fullmatch(vm_name):
            raise FakeHttpResponseError(400, "InvalidParameter", f"invalid VM name {vm_name!r}")
        for field in ("location", "hardware_profile", "network_profile"):
            if field not in parameters:
                raise FakeHttpResponseError(400, "InvalidParameter", f"missing {field}")
        confs = parameters["network_profile"].get("network_interface_configurations") or []
        if not confs or not confs[0]["ip_configurations"][0]["subnet"]["id"].startswith("/subscriptions/"):
            raise FakeHttpResponseError(400, "InvalidParameter", "a NIC on a subnet is required")
        nic_name = confs[0]["name"]
        nic_id = (
            f"/subscriptions/s/resourceGroups/{resource_group_name}"
            f"/providers/Microsoft.Network/networkInterfaces/{nic_name}"
        )
        self.owner.network.add_nic(resource_group_name, nic_name)
        vm = SimpleNamespace(
            name=vm_name,
            tags=dict(parameters.get("tags") or {}),
            os_profile=dict(parameters.get("os_profile") or {}),
            provisioning_state="Creating",
            network_profile=SimpleNamespace(network_interfaces=[SimpleNamespace(id=nic_id)]),
        )
        self.vms[(resource_group_name, vm_name)] = vm
        return _Poller(vm)

    def list(self, resource_group_name: str):
        for (rg, _), vm in list(self.vms.items()):
            if rg == resource_group_name:
                yield vm
                vm.provisioning_state = "Succeeded"

    def get(self, resource_group_name: str, vm_name: str) -> SimpleNamespace:
        try:
            return self.vms[(resource_group_name, vm_name)]
        except KeyError:
            raise FakeHttpResponseError(404, "ResourceNotFound", f"VM {vm_name} not found") from None

    def begin_update(self, resource_group_name: str, vm_name: str, parameters: dict) -> _Poller:
        vm = self.get(resource_group_name, vm_name)
        if "tags" in parameters:
            vm.tags = dict(parameters["tags"])
        return _Poller(vm)

    def begin_delete(self, resource_group_name: str, vm_name: str) -> _Poller:
        if (resource_group_name, vm_name) not in self.vms:
            raise FakeHttpResponseError(404, "ResourceNotFound", f"VM {vm_name} not found")
        del self.vms[(resource_group_name, vm_name)]
        return _Poller()


class _FakeNetwork:
    def __init__(self) -> None:
        self._ips = itertools.count(4)
        self.nics: dict[tuple[str, str], SimpleNamespace] = {}
        self.pips: dict[tuple[str, str], SimpleNamespace] = {}
        self.network_interfaces = SimpleNamespace(get=self._get_nic)
        self.public_ip_addresses = SimpleNamespace(get=self._get_pip)

    def add_nic(self, rg: str, name: str) -> None:
        n = next(self._ips)
        pip_name = f"{name}-pip"
        self.pips[(rg, pip_name)] = SimpleNamespace(ip_address=f"20.0.0.{n}")
        pip_id = f"/subscriptions/s/resourceGroups/{rg}/providers/Microsoft.Network/publicIPAddresses/{pip_name}"
        self.nics[(rg, name)] = SimpleNamespace(
            ip_configurations=[
                SimpleNamespace(private_ip_address=f"10.0.0.{n}", public_ip_address=SimpleNamespace(id=pip_id))
            ]
        )

    def _get_nic(self, resource_group_name: str, network_interface_name: str) -> SimpleNamespace:
        return self.nics[(resource_group_name, network_interface_name)]

    def _get_pip(self, resource_group_name: str, public_ip_address_name: str) -> SimpleNamespace:
        return self.pips[(resource_group_name, public_ip_address_name)]


class FakeAzure:
    """One fake subscription: ``compute`` and ``network`` clients sharing state."""

    def __init__(self) -> None:
        self.network = _FakeNetwork()
        self.compute = SimpleNamespace(virtual_machines=_FakeVMs(self))


# -- Kubernetes (kubernetes.client.CoreV1Api) ---------------------------------------------


class FakeApiException(Exception):
    """Like kubernetes.client.exceptions.ApiException: ``status``, ``reason``, ``body``."""

    def __init__(self, status: int, reason: str, body: str = "") -> None:
        super().__init__(f"({status}) Reason: {reason}")
        self.status, self.reason, self.body = status, reason, body


_K8S_LABEL_VALUE = re.compile(r"([A-Za-z0-9]([A-Za-z0-9_.-]{0,61}[A-Za-z0-9])?)?")


class FakeCoreV1Api:
    def __init__(self) -> None:
        self.pods: dict[tuple[str, str], SimpleNamespace] = {}
        self._seq = itertools.count(1)
        self.fail_next_create: Exception | None = None

    def create_namespaced_pod(self, namespace: str, body: dict) -> SimpleNamespace:
        if self.fail_next_create is not None:
            err, self.fail_next_create = self.fail_next_create, None
            raise err
        if body.get("kind") != "Pod" or not body.get("spec", {}).get("containers"):
            raise FakeApiException(422, "Unprocessable Entity", "spec.containers: Required value")
        meta = body["metadata"]
        for v in meta.get("labels", {}).values():
            if not _K8S_LABEL_VALUE.fullmatch(v) or len(v) > 63:
                raise FakeApiException(422, "Unprocessable Entity", f"metadata.labels: Invalid value: {v!r}")
        name = meta.get("name") or f"{meta['generateName']}{next(self._seq):05x}"
        if (namespace, name) in self.pods:
            raise FakeApiException(409, "Conflict", "AlreadyExists")
        n = next(self._seq)
        pod = SimpleNamespace(
            metadata=SimpleNamespace(
                name=name,
                labels=dict(meta.get("labels", {})),
                annotations=dict(meta.get("annotations", {})),
                deletion_timestamp=None,
            ),
            spec=body["spec"],
            status=SimpleNamespace(phase="Pending", pod_ip=f"10.244.0.{n % 250}"),
        )
        self.pods[(namespace, name)] = pod
        return pod

    def list_namespaced_pod(self, namespace: str, label_selector: str = "") -> SimpleNamespace:
        wanted = dict(part.split("=", 1) for part in label_selector.split(",") if part)
        items = []
        for (ns, _), pod in self.pods.items():
            if ns == namespace and all(pod.metadata.labels.get(k) == v for k, v in wanted.items()):
                items.append(pod)
                if pod.status.phase == "Pending" and pod.metadata.deletion_timestamp is None:
                    pod.status.phase = "Running"
        return SimpleNamespace(items=items)

    def read_namespaced_pod(self, name: str, namespace: str) -> SimpleNamespace:
        try:
            return self.pods[(namespace, name)]
        except KeyError:
            raise FakeApiException(404, "Not Found") from None

    def patch_namespaced_pod(self, name: str, namespace: str, body: dict) -> SimpleNamespace:
        pod = self.read_namespaced_pod(name, namespace)
        meta = body.get("metadata", {})
        pod.metadata.labels.update(meta.get("labels", {}))
        pod.metadata.annotations.update(meta.get("annotations", {}))
        return pod

    def delete_namespaced_pod(self, name: str, namespace: str) -> None:
        pod = self.read_namespaced_pod(name, namespace)
        if pod.metadata.deletion_timestamp is not None:
            del self.pods[(namespace, name)]  # second delete: the pod is gone
            return
        # Graceful deletion: the pod stays listed for a while, marked for deletion.
        pod.metadata.deletion_timestamp = "2024-01-01T00:00:00Z"
