"""No credentials in logs or status output."""

from __future__ import annotations

import logging

from shoal.autoscaler import (
    AutoscalerShell,
    InlineExecutor,
    InMemoryClusterState,
    NodeLaunchError,
    Redactor,
    ResourceDemand,
    redact,
)
from shoal.autoscaler.simulation import SimulatedProvider, VirtualClock

from .helpers import make_config

SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
TOKEN = "FwoGZXIvYXdzEBYaDHh0b2tlbnNlY3JldA"
KEY_ID = "AKIAIOSFODNN7EXAMPLE"


def test_patterns_mask_common_credentials() -> None:
    text = (
        f"auth with {KEY_ID} failed; aws_secret_access_key={SECRET}; "
        f"Authorization: Bearer {TOKEN}; https://x/blob?sv=1&sig=abcDEF123%3D&se=2; password: hunter22"
    )
    out = redact(text)
    for s in (KEY_ID, SECRET, TOKEN, "abcDEF123%3D", "hunter22"):
        assert s not in out
    assert "aws_secret_access_key=***" in out and "Bearer ***" in out and "sig=***" in out
    pem = "-----BEGIN RSA PRIVATE KEY-----\nMIIEow\n-----END RSA PRIVATE KEY-----"
    assert redact(f"key: {pem}") == "key: ***"
    assert redact("launching 3 x cpu_worker in us-west-2") == "launching 3 x cpu_worker in us-west-2"
    sha = "0123456789abcdef0123456789abcdef01234567"
    assert redact(f"commit {sha}") == f"commit {sha}"  # a hex digest is not a secret key
    assert redact(f"the secret {SECRET} leaked") == "the secret *** leaked"


def test_config_secrets_are_masked_wherever_they_appear() -> None:
    provider = {"type": "aws", "region": "us-west-2", "aws_credentials": {"aws_session_token": "opaque-session-value"}}
    r = Redactor.from_config(provider, {"UserData": "x", "client_secret": ["s3cr3t-value"]})
    assert r("error: token opaque-session-value was rejected") == "error: token *** was rejected"
    assert "s3cr3t-value" not in r("echo s3cr3t-value")
    shown = r.mapping(provider)
    assert shown["aws_credentials"] == "***" and shown["region"] == "us-west-2"


class LeakyProvider(SimulatedProvider):
    """A provider whose SDK puts credentials into its error messages."""

    def create_nodes(self, node_type, node_config, tags, count, *, resources=None):
        raise NodeLaunchError(f"request signed with {KEY_ID} secret {SECRET} token=opaque-session-value denied", "auth")

    def terminate_nodes(self, node_ids):
        raise RuntimeError(f"Authorization: Bearer {TOKEN}")


def test_logs_and_status_never_show_credentials(caplog) -> None:
    caplog.set_level(logging.DEBUG, logger="shoal.autoscaler")
    cfg = make_config(
        provider={
            "type": "local",
            "command": ["true"],
        },
        idle_timeout_minutes=1,
    )
    clock = VirtualClock()
    provider = LeakyProvider(cluster_name="test", clock=clock)
    cluster = InMemoryClusterState(clock=clock)
    secrets = Redactor(["opaque-session-value"])  # as collected from a provider config
    shell = AutoscalerShell(cfg, provider, cluster, clock=clock, executor=InlineExecutor(), redactor=secrets)
    cluster.set_demands([ResourceDemand({"CPU": 4})])
    shell.step()
    # An idle node whose termination fails with a token in the error.
    node = SimulatedProvider.create_nodes(provider, "cpu", {}, {"shoal-node-kind": "worker"}, 1)[0]
    cluster.add_node(node, {"CPU": 4}, "cpu")
    cluster.set_demands([])
    clock.advance(120)
    shell.step()
    status = shell.status()
    outputs = [caplog.text, status.format(events=100), repr(status.to_dict())]
    assert "auth" in status.format()  # the failure is reported...
    assert "request signed with ***" in caplog.text
    for text in outputs:  # ...without the credentials
        for s in (KEY_ID, SECRET, TOKEN, "opaque-session-value"):
            assert s not in text
    assert "Bearer ***" in caplog.text
    shell.close()
