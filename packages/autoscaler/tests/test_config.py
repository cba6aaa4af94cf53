"""Cluster config validation: every error names the path of the bad field."""

from __future__ import annotations

import json
import pickle
import textwrap

import pytest

from shoal.autoscaler import ClusterConfigError, load_cluster_config, validate_cluster_config
from shoal.autoscaler.config import cluster_config_json_schema


def base(**overrides):
    cfg = {
        "cluster_name": "demo",
        "provider": {"type": "local", "command": ["sleep", "60"]},
        "head_node_type": "head",
        "max_workers": 10,
        "available_node_types": {
            "head": {"resources": {"CPU": 2}, "max_workers": 0},
            "gpu_worker": {"resources": {"CPU": 8, "GPU": 1}, "min_workers": 1, "max_workers": 4},
            "cpu_worker": {"resources": {"CPU": 4, "memory": "8GiB"}},
        },
    }
    cfg.update(overrides)
    return cfg


def errors_of(raw) -> list[tuple[str, str]]:
    with pytest.raises(ClusterConfigError) as info:
        validate_cluster_config(raw, source="cluster.yaml")
    return info.value.errors


def test_valid_config_gets_defaults_and_types() -> None:
    cfg = validate_cluster_config(base())
    assert cfg.cluster_name == "demo"
    assert cfg.provider_type == "local"
    assert cfg.upscaling_speed == 1.0 and cfg.idle_timeout_minutes == 5.0 and cfg.idle_timeout_s == 300.0
    assert cfg.max_workers == 10
    gpu = cfg.available_node_types["gpu_worker"]
    assert (gpu.min_workers, gpu.max_workers, gpu.resources) == (1, 4, {"CPU": 8.0, "GPU": 1.0})
    cpu = cfg.available_node_types["cpu_worker"]
    assert cpu.max_workers == 10  # inherits the cluster-wide limit
    assert cpu.resources["memory"] == 8 * 1024**3  # sizes are parsed
    assert cfg.head_type.name == "head"
    assert cfg.setup_commands == [] and cfg.available_node_types["head"].node_config == {}


def test_max_below_min_names_the_field() -> None:
    raw = base()
    raw["available_node_types"]["gpu_worker"].update(min_workers=5, max_workers=4)
    errs = errors_of(raw)
    assert ("available_node_types.gpu_worker.max_workers", "must be >= min_workers (5), got 4") in errs


def test_all_problems_are_reported_at_once_with_paths() -> None:
    raw = base(upscaling_speed=0, idle_timeout_minutes="soon", setup_commands=["ok", 3], head_node_type="haed")
    raw["available_node_types"]["cpu_worker"]["resources"] = {"CPU": -1}
    raw["available_node_types"]["cpu_worker"]["min_worker"] = 2
    errs = dict(errors_of(raw))
    assert errs["upscaling_speed"] == "must be > 0, got 0"
    assert errs["idle_timeout_minutes"] == "must be a number, got a string"
    assert errs["setup_commands[1]"] == "must be a string, got a number"
    assert errs["available_node_types.cpu_worker.resources.CPU"] == "must be >= 0, got -1"
    assert errs["available_node_types.cpu_worker.min_worker"] == "unknown key; did you mean 'min_workers'?"
    assert "did you mean 'head'?" in errs["head_node_type"]


def test_message_lists_source_and_paths() -> None:
    raw = base()
    raw["available_node_types"]["gpu_worker"]["max_workers"] = -1
    with pytest.raises(ClusterConfigError) as info:
        validate_cluster_config(raw, source="cluster.yaml")
    text = str(info.value)
    assert text.startswith("cluster.yaml: invalid cluster config (1 problem):")
    assert "available_node_types.gpu_worker.max_workers: must be >= 0, got -1" in text
    again = pickle.loads(pickle.dumps(info.value))
    assert again.errors == info.value.errors and str(again) == text
    assert isinstance(info.value, ValueError)  # a shoal ConfigError is a ValueError


@pytest.mark.parametrize(
    ("mutate", "path", "fragment"),
    [
        (lambda c: c.pop("cluster_name"), "cluster_name", "is required"),
        (lambda c: c.update(cluster_name="My Cluster"), "cluster_name", "lowercase"),
        (lambda c: c.update(available_node_types={}), "available_node_types", "at least 1"),
        (lambda c: c.update(provider={"command": "x"}), "provider.type", "is required"),
        (lambda c: c.update(provider={"type": "awz", "region": "x"}), "provider.type", "did you mean 'aws'?"),
        (lambda c: c.update(provider={"type": "local", "head_port": 70000}), "provider.head_port", "from 0 to 65535"),
        (lambda c: c.update(provider={"type": "aws"}), "provider.region", "is required"),
        (lambda c: c.update(max_workers=0), "max_workers", "sum of min_workers over node types (1)"),
        (
            lambda c: c["available_node_types"]["cpu_worker"].update(resources={}),
            "available_node_types.cpu_worker.resources",
            "at least one",
        ),
        (
            lambda c: c["available_node_types"]["cpu_worker"].update(resources={"CPU": True}),
            "available_node_types.cpu_worker.resources.CPU",
            "must be a number",
        ),
        (
            lambda c: c["available_node_types"]["cpu_worker"].update(resources={"memory": "lots"}),
            "available_node_types.cpu_worker.resources.memory",
            "size",
        ),
        (
            lambda c: c["available_node_types"].update({"bad name": {"resources": {"CPU": 1}}}),
            "available_node_types.'bad name'",
            "not valid",
        ),
    ],
)
def test_each_error_names_its_path(mutate, path, fragment) -> None:
    raw = base()
    mutate(raw)
    errs = errors_of(raw)
    matching = [msg for p, msg in errs if p == path]
    assert matching, errs
    assert fragment in matching[0]


def test_per_type_max_required_without_cluster_max() -> None:
    raw = base()
    del raw["max_workers"]
    errs = dict(errors_of(raw))
    assert errs == {
        "available_node_types.cpu_worker.max_workers": "is required when the top-level max_workers is not set"
    }
    raw["available_node_types"]["cpu_worker"]["max_workers"] = 3
    cfg = validate_cluster_config(raw)
    assert cfg.max_workers == 0 + 4 + 3  # defaults to the sum of the types' limits


def test_provider_specific_checks_run_without_the_sdk() -> None:
    raw = base(provider={"type": "gcp", "project_id": "p", "availability_zone": "z", "zone": "oops"})
    errs = dict(errors_of(raw))
    assert errs["provider.zone"] == "unknown key for the 'gcp' provider"
    assert errs["available_node_types.head.node_config.machine_type"] == "is required by GCE"


def test_load_yaml_file(tmp_path) -> None:
    path = tmp_path / "cluster.yaml"
    path.write_text(
        textwrap.dedent(
            """
            cluster_name: demo
            max_workers: 4
            upscaling_speed: 2
            idle_timeout_minutes: 1.5
            provider: {type: local, command: sleep 60}
            head_node_type: head
            available_node_types:
              head: {resources: {CPU: 1}, max_workers: 0}
              worker: {resources: {CPU: 2, special: 1}, min_workers: 0}
            setup_commands: [echo hi]
            """
        )
    )
    cfg = load_cluster_config(path)
    assert (cfg.upscaling_speed, cfg.idle_timeout_minutes, cfg.setup_commands) == (2.0, 1.5, ["echo hi"])
    assert cfg.source == str(path)
    assert load_cluster_config(path, {"cluster_name": "other"}).cluster_name == "other"


def test_yaml_errors_have_line_and_column(tmp_path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("cluster_name: demo\nprovider: {type: local\nhead_node_type: x\n")
    with pytest.raises(ClusterConfigError, match=r"bad.yaml: not valid YAML at line 3, column \d+"):
        load_cluster_config(path)
    with pytest.raises(ClusterConfigError, match="cannot read cluster config"):
        load_cluster_config(tmp_path / "missing.yaml")
    path.write_text("- just\n- a list\n")
    with pytest.raises(ClusterConfigError, match=r"\(top level\): must be a mapping, got a list"):
        load_cluster_config(path)


def test_json_schema_describes_the_config() -> None:
    schema = cluster_config_json_schema()
    json.dumps(schema)
    assert set(schema["required"]) == {"cluster_name", "provider", "available_node_types", "head_node_type"}
    node_type = schema["properties"]["available_node_types"]["additionalProperties"]
    assert node_type["properties"]["min_workers"] == {"type": "integer", "minimum": 0, "default": 0}
    assert schema["additionalProperties"] is False
