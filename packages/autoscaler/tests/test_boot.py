"""Boot scripts: what a cloud machine runs at first boot to become a node, and the settings behind them."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from shoal.autoscaler import ClusterConfigError, validate_cluster_config
from shoal.autoscaler.boot import agent_flags, boot_script

TOKEN = "tok_0123456789abcdefABCDEF"


def config(**extra):
    return validate_cluster_config(
        {
            "cluster_name": "demo",
            "provider": {"type": "aws", "region": "us-west-2"},
            "head_node_type": "head",
            "max_workers": 4,
            "initialization_commands": ["echo init"],
            "setup_commands": ["pip install -q shoal-core"],
            "head_setup_commands": ["echo head"],
            "worker_setup_commands": ["echo worker"],
            "available_node_types": {
                "head": {"resources": {"CPU": 4}, "node_config": {"ImageId": "ami-1", "InstanceType": "m5.xlarge"}},
                "gpu": {
                    "resources": {"CPU": 8, "GPU": 1, "accel": 2},
                    "node_config": {"ImageId": "ami-1", "InstanceType": "g5.2xlarge"},
                    "worker_setup_commands": ["echo gpu-worker"],
                },
                "cpu": {"resources": {"CPU": 2.5}, "node_config": {"ImageId": "ami-1", "InstanceType": "m5.large"}},
            },
            **extra,
        }
    )


def order(script: str, *needles: str) -> list[int]:
    return [script.index(n) for n in needles]


def test_head_script_runs_setup_in_order_then_starts_the_head() -> None:
    s = boot_script(config(), "head", "head", TOKEN, head_port=7000)
    positions = order(s, "echo init", "pip install -q shoal-core", "echo head", TOKEN, "shoal start")
    assert positions == sorted(positions)
    assert "echo worker" not in s
    assert "export BOOT_HEAD_PORT=7000" in s
    assert (
        'shoal start --host "$BOOT_NODE_IP" --head --port "$BOOT_HEAD_PORT" --token-path "$BOOT_TOKEN_PATH" '
        "--num-cpus 4 --num-gpus 0" in s
    )
    assert "umask 077" in s and "set -x" not in s and s.count(TOKEN) == 1


def test_worker_script_joins_the_head_with_its_types_resources_and_setup() -> None:
    s = boot_script(config(), "gpu", "worker", TOKEN, head_address="10.0.0.5:6380")
    assert "export BOOT_HEAD_ADDRESS=10.0.0.5:6380" in s
    assert "echo gpu-worker" in s and "echo worker\n" not in s and "echo head" not in s  # the type's override wins
    assert '--address "$BOOT_HEAD_ADDRESS"' in s
    assert "--num-cpus 8 --num-gpus 1 --resources '{\"accel\": 2.0}'" in s
    plain = boot_script(config(), "cpu", "worker", TOKEN, head_address="10.0.0.5:6380")
    assert "echo worker" in plain
    assert agent_flags({"CPU": 2.5}) == ["--num-cpus", "2", "--num-gpus", "0", "--resources", '{"CPU": 2.5}']


def test_foreground_scripts_exec_the_agent_and_keep_their_output() -> None:
    s = boot_script(config(), "cpu", "worker", TOKEN, head_address="h:1", foreground=True)
    assert 'exec "${BOOT_PYTHON:-python3}" -m shoal._cluster.agent --host "$BOOT_NODE_IP" --address' in s
    assert "BOOT_LOG" not in s and "shoal start" not in s


def test_start_commands_replace_the_default_start() -> None:
    cfg = config(head_start_commands=["my-agent --head"], worker_start_commands=["my-agent --join $BOOT_HEAD_ADDRESS"])
    head = boot_script(cfg, "head", "head", TOKEN)
    worker = boot_script(cfg, "cpu", "worker", TOKEN, head_address="h:1")
    assert "my-agent --head" in head and "shoal start" not in head
    assert "my-agent --join $BOOT_HEAD_ADDRESS" in worker and "shoal start" not in worker


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_scripts_are_valid_bash() -> None:
    for s in (
        boot_script(config(), "head", "head", TOKEN),
        boot_script(config(), "gpu", "worker", TOKEN, head_address="10.0.0.5:6380", foreground=True),
    ):
        subprocess.run(["bash", "-n"], input=s, text=True, check=True, timeout=10)


def test_bad_inputs_are_refused() -> None:
    with pytest.raises(ValueError, match="needs the head's address"):
        boot_script(config(), "cpu", "worker", TOKEN)
    with pytest.raises(ValueError, match="token"):
        boot_script(config(), "head", "head", "bad'token")
    with pytest.raises(ValueError, match="token"):
        boot_script(config(), "head", "head", "")


@pytest.mark.parametrize(
    ("setting", "value", "message"),
    [
        ("head_port", 70000, "must be a port number"),
        ("head_port", "6380", "must be a port number"),
        ("use_internal_ips", "yes", "must be true or false"),
        ("head_start_timeout_s", 0, "must be a positive number of seconds"),
    ],
)
def test_boot_settings_are_validated_with_their_path(setting: str, value: object, message: str) -> None:
    raw = {
        "cluster_name": "demo",
        "provider": {"type": "aws", "region": "us-west-2", setting: value},
        "head_node_type": "head",
        "max_workers": 1,
        "available_node_types": {
            "head": {"resources": {"CPU": 1}, "node_config": {"ImageId": "a", "InstanceType": "b"}},
        },
    }
    with pytest.raises(ClusterConfigError, match=f"provider.{setting}: {message}"):
        validate_cluster_config(raw)


def test_boot_settings_are_accepted_by_every_cloud_provider() -> None:
    from shoal.autoscaler.providers.aws import AWSNodeProvider
    from shoal.autoscaler.providers.azure import AzureNodeProvider
    from shoal.autoscaler.providers.gcp import GCPNodeProvider
    from shoal.autoscaler.providers.kuberay import KubeRayNodeProvider

    settings = {"head_port": 6390, "use_internal_ips": True, "head_start_timeout_s": 300}
    for cls in (AWSNodeProvider, GCPNodeProvider, AzureNodeProvider, KubeRayNodeProvider):
        errors = cls.validate_config({"type": cls.provider_name, **settings}, {})
        assert not [path for path, _ in errors if path.split(".")[-1] in settings], (cls.provider_name, errors)
