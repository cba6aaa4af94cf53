"""The ``aws`` provider: EC2 instances through boto3.

Provider settings::

    provider:
      type: aws
      region: us-west-2
      # optional:
      profile: my-profile                 # a named AWS profile
      aws_credentials: {aws_access_key_id: ..., aws_secret_access_key: ..., aws_session_token: ...}
      endpoint_url: http://localhost:5000 # an EC2-compatible endpoint

A node type's ``node_config`` holds ``run_instances`` arguments
(``InstanceType``, ``ImageId``, ``SubnetId``, ``UserData``...); the provider
adds the counts and its tags. Instances are found again by the
``shoal-cluster-name`` tag. Credentials usually come from the environment
or instance profile; whatever is given here never appears in errors.
"""

# Cloud SDKs raise many unrelated exception classes; each call site translates
# whatever it gets into a NodeProviderError at this boundary.
# ruff: noqa: BLE001

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from shoal.autoscaler._errors import NodeLaunchError, NodeProviderError
from shoal.autoscaler._registry import require_module
from shoal.autoscaler.node_provider import BOOT_SETTINGS, TAG_CLUSTER_NAME, NodeProvider, ProviderNode
from shoal.autoscaler.providers._util import boot_setting_errors, deep_merge, require_keys

__all__ = ["AWSNodeProvider", "categorize_aws_error"]

_KNOWN = {"type", "region", "availability_zone", "profile", "aws_credentials", "endpoint_url"} | BOOT_SETTINGS
_QUOTA = {
    "InstanceLimitExceeded",
    "VcpuLimitExceeded",
    "MaxSpotInstanceCountExceeded",
    "InsufficientFreeAddressesInSubnet",
    "AddressLimitExceeded",
}
_CAPACITY = {"InsufficientInstanceCapacity", "InsufficientHostCapacity", "InsufficientCapacity", "Unsupported"}
_AUTH = {"AuthFailure", "UnauthorizedOperation", "InvalidClientTokenId", "ExpiredToken", "OptInRequired"}
_NOT_FOUND = {"InvalidInstanceID.NotFound"}


def categorize_aws_error(code: str) -> str:
    """The launch error category for an EC2 error code."""
    if code in _QUOTA:
        return "quota"
    if code in _CAPACITY:
        return "capacity"
    if code in _AUTH:
        return "auth"
    if code.startswith(("Invalid", "Missing")) or code in {"ValidationError", "DryRunOperation"}:
        return "config"
    return "transient"


class AWSNodeProvider(NodeProvider):
    provider_name = "aws"

    def __init__(self, provider_config: Mapping[str, Any], cluster_name: str, *, client: Any = None) -> None:
        super().__init__(provider_config, cluster_name)
        self._client = client if client is not None else self._make_client()
        self._botocore_exceptions = None

    def _make_client(self) -> Any:
        boto3 = require_module("boto3", "aws")
        cfg = self.provider_config
        creds = dict(cfg.get("aws_credentials") or {})
        session = boto3.session.Session(profile_name=cfg.get("profile"), region_name=cfg["region"], **creds)
        kwargs = {"endpoint_url": cfg["endpoint_url"]} if cfg.get("endpoint_url") else {}
        return session.client("ec2", **kwargs)

    @classmethod
    def validate_config(cls, provider_config, node_types):
        errors = require_keys(provider_config, {"region": str}, "aws")
        for key in provider_config:
            if key not in _KNOWN:
                errors.append((f"provider.{key}", "unknown key for the 'aws' provider"))
        errors += boot_setting_errors(provider_config)
        creds = provider_config.get("aws_credentials")
        if creds is not None and not isinstance(creds, Mapping):
            errors.append(("provider.aws_credentials", "must be a mapping"))
        for name, nc in node_types.items():
            for key in ("InstanceType", "ImageId"):
                if key not in nc:
                    errors.append((f"available_node_types.{name}.node_config.{key}", "is required by EC2"))
        return errors

    def with_boot_script(self, node_config: Mapping[str, Any], script: str) -> dict[str, Any]:
        """The script as the instance's user data (cloud-init runs it at first boot)."""
        if node_config.get("UserData"):
            raise NodeLaunchError("aws: node_config.UserData is set; `shoal up` needs it for its boot script", "config")
        return {**node_config, "UserData": script}

    # -- errors ----------------------------------------------------------------------

    @staticmethod
    def _translate(e: Exception, what: str, launch: bool) -> NodeProviderError:
        response = getattr(e, "response", None)
        cls = NodeLaunchError if launch else NodeProviderError
        if isinstance(response, Mapping) and "Error" in response:
            code = str(response["Error"].get("Code", ""))
            msg = str(response["Error"].get("Message", ""))
            return cls(f"aws: {what} failed: {code}: {msg}", categorize_aws_error(code))
        name = type(e).__name__
        if name in ("NoCredentialsError", "PartialCredentialsError", "NoRegionError", "ProfileNotFound"):
            return cls(f"aws: {what} failed: {name}: {e}", "auth")
        return cls(f"aws: {what} failed: {name}: {e}", "transient")

    @staticmethod
    def _code(e: Exception) -> str:
        response = getattr(e, "response", None)
        return str(response["Error"].get("Code", "")) if isinstance(response, Mapping) and "Error" in response else ""

    # -- NodeProvider ----------------------------------------------------------------

    def create_nodes(self, node_type, node_config, tags, count, *, resources=None) -> list[str]:
        if count <= 0:
            return []
        full = self._full_tags(node_type, tags)
        tag_list = [{"Key": k, "Value": v} for k, v in sorted(full.items())]
        args = dict(node_config)
        specs = [dict(s) for s in args.pop("TagSpecifications", [])]
        merged = False
        for spec in specs:
            if spec.get("ResourceType") == "instance":
                spec["Tags"] = [t for t in spec.get("Tags", []) if t["Key"] not in full] + tag_list
                merged = True
        if not merged:
            specs.append({"ResourceType": "instance", "Tags": tag_list})
        if self.provider_config.get("availability_zone") and "Placement" not in args:
            args = deep_merge(args, {"Placement": {"AvailabilityZone": self.provider_config["availability_zone"]}})
        try:
            resp = self._client.run_instances(MinCount=count, MaxCount=count, TagSpecifications=specs, **args)
        except Exception as e:
            raise self._translate(e, f"creating {count} x {node_type}", launch=True) from None
        return [inst["InstanceId"] for inst in resp.get("Instances", [])]

    def non_terminated_nodes(self, tag_filters=None) -> list[ProviderNode]:
        filters = [
            {"Name": f"tag:{TAG_CLUSTER_NAME}", "Values": [self.cluster_name]},
            {"Name": "instance-state-name", "Values": ["pending", "running"]},
        ]
        for k, v in (tag_filters or {}).items():
            filters.append({"Name": f"tag:{k}", "Values": [v]})
        out = []
        try:
            paginator = self._client.get_paginator("describe_instances")
            for page in paginator.paginate(Filters=filters):
                for reservation in page.get("Reservations", []):
                    for inst in reservation.get("Instances", []):
                        tags = {t["Key"]: t["Value"] for t in inst.get("Tags", [])}
                        out.append(
                            ProviderNode(
                                inst["InstanceId"],
                                tags,
                                internal_ip=inst.get("PrivateIpAddress"),
                                external_ip=inst.get("PublicIpAddress"),
                            )
                        )
        except Exception as e:
            raise self._translate(e, "listing instances", launch=False) from None
        return out

    def set_node_tags(self, node_id: str, tags: Mapping[str, str]) -> None:
        try:
            self._client.create_tags(Resources=[node_id], Tags=[{"Key": k, "Value": v} for k, v in tags.items()])
        except Exception as e:
            raise self._translate(e, f"tagging {node_id}", launch=False) from None

    def terminate_nodes(self, node_ids: Sequence[str]) -> None:
        ids = list(node_ids)
        for start in range(0, len(ids), 1000):  # the API takes at most 1,000 ids per call
            chunk = ids[start : start + 1000]
            try:
                self._client.terminate_instances(InstanceIds=chunk)
            except Exception as e:
                if self._code(e) not in _NOT_FOUND:
                    raise self._translate(e, "terminating instances", launch=False) from None
                # Some ids are gone already: terminate the others one by one.
                for nid in chunk:
                    try:
                        self._client.terminate_instances(InstanceIds=[nid])
                    except Exception as e2:
                        if self._code(e2) not in _NOT_FOUND:
                            raise self._translate(e2, f"terminating {nid}", launch=False) from None
