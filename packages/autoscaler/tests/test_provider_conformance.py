"""One contract, every provider: create, list, tag, look up IPs, terminate, isolate clusters, fail clearly."""

from __future__ import annotations

import base64
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from shoal.autoscaler import HeadStartUnsupportedError, NodeLaunchError, NodeProvider
from shoal.autoscaler.node_provider import TAG_CLUSTER_NAME, TAG_NODE_KIND, TAG_NODE_TYPE

from .fakes import (
    FakeApiException,
    FakeAzure,
    FakeCoreV1Api,
    FakeGoogleAPIError,
    FakeHttpResponseError,
    FakeInstancesClient,
)


@dataclass
class Env:
    make: Callable[[str], NodeProvider]  # cluster name -> provider on the same backend
    node_config: dict[str, Any]
    #: Makes the next create fail; returns the category the provider must report.
    inject_failure: Callable[[NodeProvider], str]
    #: The boot script a created node received, as the machine will see it (None: no boot scripts).
    boot_script_of: Callable[[NodeProvider, str], str] | None = None


def _local_env(tmp_path) -> Iterator[Env]:
    from shoal.autoscaler.providers.local import LocalNodeProvider

    made: list[NodeProvider] = []

    def make(name: str) -> NodeProvider:
        cmd = [sys.executable, "-c", "import time; time.sleep(60)"]
        p = LocalNodeProvider(
            {"type": "local", "command": cmd, "state_dir": str(tmp_path), "terminate_grace_s": 2}, name
        )
        made.append(p)
        return p

    def fail(p: NodeProvider) -> str:
        p.provider_config["command"] = [str(tmp_path / "no-such-agent")]
        return "config"

    yield Env(make, {}, fail)
    for p in made:  # never leave processes behind
        p.terminate_nodes([n.node_id for n in p.non_terminated_nodes()])


def _aws_env(tmp_path) -> Iterator[Env]:
    import moto
    from botocore.exceptions import ClientError

    from shoal.autoscaler.providers.aws import AWSNodeProvider

    creds = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}

    def make(name: str) -> NodeProvider:
        return AWSNodeProvider({"type": "aws", "region": "us-west-2", "aws_credentials": creds}, name)

    def fail(p: NodeProvider) -> str:
        real = p._client.run_instances

        def once(**kwargs):
            p._client.run_instances = real
            error = {"Error": {"Code": "InstanceLimitExceeded", "Message": "You have requested more instances"}}
            raise ClientError(error, "RunInstances")

        p._client.run_instances = once
        return "quota"

    def boot_script_of(p: NodeProvider, node_id: str) -> str:
        attr = p._client.describe_instance_attribute(InstanceId=node_id, Attribute="userData")  # type: ignore[attr-defined]
        return base64.b64decode(attr["UserData"]["Value"]).decode()

    with moto.mock_aws():
        yield Env(make, {"ImageId": "ami-12345678", "InstanceType": "m5.large"}, fail, boot_script_of)


def _gcp_env(tmp_path) -> Iterator[Env]:
    from shoal.autoscaler.providers.gcp import GCPNodeProvider

    client = FakeInstancesClient()

    def make(name: str) -> NodeProvider:
        cfg = {"type": "gcp", "project_id": "proj", "availability_zone": "us-central1-a"}
        return GCPNodeProvider(cfg, name, client=client)

    def fail(p: NodeProvider) -> str:
        client.fail_next_insert = FakeGoogleAPIError(403, "QUOTA_EXCEEDED: Quota 'CPUS' exceeded. Limit: 24.0")
        return "quota"

    def boot_script_of(p: NodeProvider, node_id: str) -> str:
        (inst,) = [i for i in client.instances.values() if i.name == node_id]
        return next(i["value"] for i in inst.metadata["items"] if i["key"] == "startup-script")

    yield Env(make, {"machine_type": "n2-standard-4"}, fail, boot_script_of)


def _azure_env(tmp_path) -> Iterator[Env]:
    from shoal.autoscaler.providers.azure import AzureNodeProvider

    azure = FakeAzure()

    def make(name: str) -> NodeProvider:
        cfg = {
            "type": "azure",
            "subscription_id": "s",
            "resource_group": "rg",
            "location": "westus2",
            "subnet_id": "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/virtualNetworks/v/subnets/d",
        }
        return AzureNodeProvider(cfg, name, compute_client=azure.compute, network_client=azure.network)

    def fail(p: NodeProvider) -> str:
        azure.compute.virtual_machines.fail_next_create = FakeHttpResponseError(
            409,
            "OperationNotAllowed",
            "Operation could not be completed as it results in exceeding approved Total Regional Cores quota",
        )
        return "quota"

    def boot_script_of(p: NodeProvider, node_id: str) -> str:
        (vm,) = [vm for vm in azure.compute.virtual_machines.vms.values() if vm.name == node_id]
        return base64.b64decode(vm.os_profile["custom_data"]).decode()

    yield Env(make, {"hardware_profile": {"vm_size": "Standard_D4s_v5"}}, fail, boot_script_of)


def _kuberay_env(tmp_path) -> Iterator[Env]:
    from shoal.autoscaler.providers.kuberay import KubeRayNodeProvider

    api = FakeCoreV1Api()

    def make(name: str) -> NodeProvider:
        return KubeRayNodeProvider({"type": "kuberay", "namespace": "shoal"}, name, core_api=api)

    def fail(p: NodeProvider) -> str:
        api.fail_next_create = FakeApiException(
            403, "Forbidden", 'pods "x" is forbidden: exceeded quota: compute-resources'
        )
        return "quota"

    def boot_script_of(p: NodeProvider, node_id: str) -> str:
        (pod,) = [pod for pod in api.pods.values() if pod.metadata.name == node_id]
        command = pod.spec["containers"][0]["command"]
        assert command[:2] == ["/bin/bash", "-c"] and "args" not in pod.spec["containers"][0]
        return str(command[2])

    template = {"spec": {"containers": [{"name": "node", "image": "shoal:latest", "args": ["serve"]}]}}
    yield Env(make, template, fail, boot_script_of)


ENVS = {"local": _local_env, "aws": _aws_env, "gcp": _gcp_env, "azure": _azure_env, "kuberay": _kuberay_env}


@pytest.fixture(params=sorted(ENVS))
def env(request, tmp_path) -> Iterator[Env]:
    yield from ENVS[request.param](tmp_path)


def test_create_lists_nodes_with_their_tags(env: Env) -> None:
    p = env.make("alpha")
    ids = p.create_nodes("cpu_worker", env.node_config, {TAG_NODE_KIND: "worker", "team": "ml"}, 2)
    assert len(ids) == 2 and len(set(ids)) == 2
    listed = {n.node_id: n for n in p.non_terminated_nodes()}
    assert set(listed) == set(ids)
    for nid in ids:
        tags = listed[nid].tags
        assert tags[TAG_CLUSTER_NAME] == "alpha"
        assert tags[TAG_NODE_TYPE] == "cpu_worker"
        assert tags[TAG_NODE_KIND] == "worker"
        assert tags["team"] == "ml"
        assert listed[nid].node_type == "cpu_worker"
        assert p.node_tags(nid) == dict(tags)
    assert p.create_nodes("cpu_worker", env.node_config, {}, 0) == []


def test_tag_filters_and_set_node_tags(env: Env) -> None:
    p = env.make("alpha")
    (a,) = p.create_nodes("cpu_worker", env.node_config, {}, 1)
    (b,) = p.create_nodes("gpu.worker", env.node_config, {}, 1)
    assert [n.node_id for n in p.non_terminated_nodes({TAG_NODE_TYPE: "gpu.worker"})] == [b]
    assert p.non_terminated_nodes({TAG_NODE_TYPE: "gpu.worker", "missing": "x"}) == []
    p.set_node_tags(a, {"shoal-status": "up-to-date"})
    assert p.node_tags(a)["shoal-status"] == "up-to-date"
    assert p.node_tags(a)[TAG_NODE_TYPE] == "cpu_worker"  # other tags survive
    assert [n.node_id for n in p.non_terminated_nodes({"shoal-status": "up-to-date"})] == [a]


def test_ips_are_reported(env: Env) -> None:
    p = env.make("alpha")
    ids = p.create_nodes("cpu_worker", env.node_config, {}, 2)
    p.non_terminated_nodes()
    ips = [p.internal_ip(nid) for nid in ids]
    assert all(isinstance(ip, str) and ip.count(".") == 3 for ip in ips)
    for nid in ids:
        ext = p.external_ip(nid)
        assert ext is None or (isinstance(ext, str) and ext.count(".") == 3)


def test_terminate_is_idempotent(env: Env) -> None:
    p = env.make("alpha")
    a, b = p.create_nodes("cpu_worker", env.node_config, {}, 2)
    p.terminate_nodes([a])
    assert [n.node_id for n in p.non_terminated_nodes()] == [b]
    p.terminate_nodes([a])  # already gone: no error
    p.terminate_node(b)
    p.terminate_nodes([b])
    assert p.non_terminated_nodes() == []


def test_clusters_do_not_see_each_other(env: Env) -> None:
    alpha, beta = env.make("alpha"), env.make("beta")
    a = alpha.create_nodes("cpu_worker", env.node_config, {}, 1)
    b = beta.create_nodes("cpu_worker", env.node_config, {}, 1)
    assert [n.node_id for n in alpha.non_terminated_nodes()] == a
    assert [n.node_id for n in beta.non_terminated_nodes()] == b
    alpha.terminate_nodes(a)
    assert [n.node_id for n in beta.non_terminated_nodes()] == b


def test_launch_failure_is_a_categorized_node_launch_error(env: Env) -> None:
    p = env.make("alpha")
    expected = env.inject_failure(p)
    with pytest.raises(NodeLaunchError) as info:
        p.create_nodes("cpu_worker", env.node_config, {}, 1)
    assert info.value.category == expected
    assert str(info.value)
    assert p.non_terminated_nodes() == []  # a failed launch leaves nothing behind


def test_boot_scripts_reach_the_machine_or_are_refused_before_launch(env: Env) -> None:
    p = env.make("boot")
    script = "#!/bin/bash\necho 'booting'\n"
    if env.boot_script_of is None:
        with pytest.raises(HeadStartUnsupportedError, match="cannot run a boot script"):
            p.with_boot_script(env.node_config, script)
        return
    config = p.with_boot_script(env.node_config, script)
    (nid,) = p.create_nodes("cpu", config, {}, 1)
    try:
        assert env.boot_script_of(p, nid) == script
        assert p.with_boot_script(env.node_config, script) == config  # the node config given is not modified
        with pytest.raises(NodeLaunchError, match="boot script") as info:
            p.with_boot_script(config, script)  # one already there is never silently replaced
        assert info.value.category == "config"
    finally:
        p.terminate_nodes([nid])
