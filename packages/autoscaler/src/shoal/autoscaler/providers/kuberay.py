"""The ``kuberay`` provider: worker pods through the Kubernetes API, in the KubeRay style.

Provider settings::

    provider:
      type: kuberay
      namespace: shoal
      # optional; default: in-cluster config, else ~/.kube/config
      kubeconfig: ~/.kube/config
      context: my-context

Like KubeRay, every node is a pod labelled with its cluster and group (node
type) and kind (head/worker); a node type's ``node_config`` is the pod
template (``metadata`` and ``spec``). The exact tags, which labels cannot
always hold, live in the ``shoal.io/tags`` annotation.
"""

# Cloud SDKs raise many unrelated exception classes; each call site translates
# whatever it gets into a NodeProviderError at this boundary.
# ruff: noqa: BLE001

from __future__ import annotations

import copy
import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from shoal.autoscaler._errors import NodeLaunchError, NodeProviderError
from shoal.autoscaler._registry import require_module
from shoal.autoscaler.node_provider import BOOT_SETTINGS, TAG_NODE_KIND, TAG_NODE_TYPE, NodeProvider, ProviderNode
from shoal.autoscaler.providers._util import boot_setting_errors, deep_merge, require_keys

__all__ = ["KubeRayNodeProvider", "categorize_k8s_error", "LABEL_CLUSTER", "LABEL_GROUP", "LABEL_KIND"]

LABEL_CLUSTER = "shoal.io/cluster"
LABEL_GROUP = "shoal.io/group"
LABEL_KIND = "shoal.io/node-kind"
ANNOTATION_TAGS = "shoal.io/tags"
_KNOWN = {"type", "namespace", "kubeconfig", "context"} | BOOT_SETTINGS
_LABEL_VALUE = re.compile(r"([A-Za-z0-9]([A-Za-z0-9_.-]{0,61}[A-Za-z0-9])?)?")


def categorize_k8s_error(e: BaseException) -> str:
    """The launch error category of a kubernetes ApiException (duck-typed: ``status``, ``body``)."""
    status = getattr(e, "status", None)
    text = f"{getattr(e, 'reason', '')} {getattr(e, 'body', '')} {e}".lower()
    if "exceeded quota" in text or "quota" in text:
        return "quota"
    if status in (401, 403):
        return "auth"
    if status in (400, 404, 409, 422):
        return "config"
    return "transient"


def _get(obj: Any, *path: str) -> Any:
    """Attribute or key access along ``path`` (client models or plain dicts)."""
    for name in path:
        if obj is None:
            return None
        obj = obj.get(name) if isinstance(obj, Mapping) else getattr(obj, name, None)
    return obj


class KubeRayNodeProvider(NodeProvider):
    provider_name = "kuberay"

    def __init__(self, provider_config: Mapping[str, Any], cluster_name: str, *, core_api: Any = None) -> None:
        super().__init__(provider_config, cluster_name)
        self.namespace = provider_config.get("namespace", "default")
        if core_api is None:
            kubernetes = require_module("kubernetes", "kuberay")
            if provider_config.get("kubeconfig") or provider_config.get("context"):
                kubernetes.config.load_kube_config(
                    config_file=provider_config.get("kubeconfig"), context=provider_config.get("context")
                )
            else:
                try:
                    kubernetes.config.load_incluster_config()
                except kubernetes.config.ConfigException:
                    kubernetes.config.load_kube_config()
            core_api = kubernetes.client.CoreV1Api()
        self._api = core_api

    @classmethod
    def validate_config(cls, provider_config, node_types):
        errors = require_keys(provider_config, {"namespace": str}, "kuberay")
        for key in provider_config:
            if key not in _KNOWN:
                errors.append((f"provider.{key}", "unknown key for the 'kuberay' provider"))
        errors += boot_setting_errors(provider_config)
        for name, nc in node_types.items():
            path = f"available_node_types.{name}"
            if not _LABEL_VALUE.fullmatch(name) or len(name) > 63:
                errors.append((path, "node type names must be valid Kubernetes label values"))
            containers = _get(nc, "spec", "containers")
            if not isinstance(containers, list) or not containers:
                errors.append((f"{path}.node_config.spec.containers", "a pod template needs at least one container"))
        return errors

    @staticmethod
    def _err(e: Exception, what: str, launch: bool) -> NodeProviderError:
        cls = NodeLaunchError if launch else NodeProviderError
        status = getattr(e, "status", None)
        reason = getattr(e, "reason", None)
        detail = f"{status} {reason}" if status is not None else f"{type(e).__name__}: {e}"
        return cls(f"kuberay: {what} failed: {detail}", categorize_k8s_error(e))

    def _labels(self, tags: Mapping[str, str]) -> dict[str, str]:
        return {
            LABEL_CLUSTER: self.cluster_name,
            LABEL_GROUP: tags[TAG_NODE_TYPE],
            LABEL_KIND: tags.get(TAG_NODE_KIND, "worker"),
        }

    #: A pod's script is its first container's main process: the agent must stay in the foreground.
    boot_in_foreground = True

    def with_boot_script(self, node_config: Mapping[str, Any], script: str) -> dict[str, Any]:
        """The script as the first container's command (``bash -c``), replacing the image's own."""
        template = copy.deepcopy(dict(node_config))
        containers = _get(template, "spec", "containers")
        if not isinstance(containers, list) or not containers:
            raise NodeLaunchError("kuberay: the pod template has no container to run the boot script", "config")
        if containers[0].get("command"):
            raise NodeLaunchError(
                "kuberay: the first container already has a command; `shoal up` needs it for its boot script", "config"
            )
        containers[0] = {**containers[0], "command": ["/bin/bash", "-c", script]}
        containers[0].pop("args", None)
        return template

    def create_nodes(self, node_type, node_config, tags, count, *, resources=None) -> list[str]:
        if count <= 0:
            return []
        full = self._full_tags(node_type, tags)
        if not _LABEL_VALUE.fullmatch(node_type):
            raise NodeLaunchError(f"kuberay: node type {node_type!r} is not a valid label value", "config")
        template = copy.deepcopy(dict(node_config))
        body = deep_merge(
            template,
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {
                    "generateName": f"{self.cluster_name}-{node_type.lower().replace('_', '-').replace('.', '-')}-",
                    "labels": self._labels(full),
                    "annotations": {ANNOTATION_TAGS: json.dumps(full, sort_keys=True)},
                },
            },
        )
        body["metadata"].pop("name", None)  # names come from generateName, one per pod
        names: list[str] = []
        try:
            for _ in range(count):
                pod = self._api.create_namespaced_pod(self.namespace, body)
                names.append(_get(pod, "metadata", "name"))
        except Exception as e:
            if names:
                try:
                    self.terminate_nodes(names)
                except NodeProviderError:
                    pass
            raise self._err(e, f"creating {count} x {node_type}", launch=True) from None
        return names

    def non_terminated_nodes(self, tag_filters=None) -> list[ProviderNode]:
        try:
            pods = self._api.list_namespaced_pod(self.namespace, label_selector=f"{LABEL_CLUSTER}={self.cluster_name}")
        except Exception as e:
            raise self._err(e, "listing pods", launch=False) from None
        out = []
        for pod in _get(pods, "items") or []:
            if _get(pod, "metadata", "deletion_timestamp") is not None:
                continue
            if _get(pod, "status", "phase") not in ("Pending", "Running"):
                continue
            annotations = _get(pod, "metadata", "annotations") or {}
            try:
                tags = dict(json.loads(annotations.get(ANNOTATION_TAGS, "{}")))
            except ValueError:
                tags = {}
            if not self._matches(tags, tag_filters):
                continue
            out.append(ProviderNode(_get(pod, "metadata", "name"), tags, internal_ip=_get(pod, "status", "pod_ip")))
        return out

    def set_node_tags(self, node_id: str, tags: Mapping[str, str]) -> None:
        try:
            pod = self._api.read_namespaced_pod(node_id, self.namespace)
            annotations = _get(pod, "metadata", "annotations") or {}
            merged = {**json.loads(annotations.get(ANNOTATION_TAGS, "{}")), **tags}
            patch = {
                "metadata": {
                    "labels": self._labels(merged),
                    "annotations": {ANNOTATION_TAGS: json.dumps(merged, sort_keys=True)},
                }
            }
            self._api.patch_namespaced_pod(node_id, self.namespace, patch)
        except Exception as e:
            raise self._err(e, f"tagging {node_id}", launch=False) from None

    def terminate_nodes(self, node_ids: Sequence[str]) -> None:
        for name in node_ids:
            try:
                self._api.delete_namespaced_pod(name, self.namespace)
            except Exception as e:
                if getattr(e, "status", None) != 404:
                    raise self._err(e, f"deleting pod {name}", launch=False) from None
