"""The controller's decisions, without processes: DeploymentState and AutoscalingPolicy."""

from __future__ import annotations

import itertools

from shoal.serve._autoscaling import AutoscalingPolicy
from shoal.serve._deployment_state import (
    DeploymentState,
    DeploymentStatus,
    ReconfigureReplica,
    ReplicaState,
    StartReplica,
    StopReplica,
)
from shoal.serve.config import AutoscalingConfig, DeploymentConfig


def new_state() -> DeploymentState:
    ids = itertools.count(1)
    return DeploymentState("app", "dep", new_id=lambda: f"r{next(ids)}")


def start_all(state: DeploymentState, actions) -> None:
    for a in actions:
        if isinstance(a, StartReplica):
            state.on_started(a.replica_id, f"/tmp/{a.replica_id}.sock")


def stop_all(state: DeploymentState, actions) -> None:
    for a in actions:
        if isinstance(a, StopReplica):
            state.on_stopped(a.replica_id)


def test_first_deploy_starts_replicas_and_becomes_healthy() -> None:
    state = new_state()
    state.deploy("v1", DeploymentConfig(num_replicas=2))
    actions = state.reconcile(now=0)
    assert actions == [StartReplica("r1", "v1"), StartReplica("r2", "v1")]
    assert state.status == DeploymentStatus.UPDATING
    assert state.reconcile(now=0) == []  # starting replicas are not started twice
    start_all(state, actions)
    assert state.reconcile(now=0) == []
    assert state.status == DeploymentStatus.HEALTHY
    assert [r.replica_id for r in state.running()] == ["r1", "r2"]


def test_rolling_update_with_room_keeps_old_replicas_until_new_ones_run() -> None:
    state = new_state()
    state.deploy("v1", DeploymentConfig(num_replicas=2))
    start_all(state, state.reconcile(now=0))
    state.deploy("v2", DeploymentConfig(num_replicas=2))
    actions = state.reconcile(now=1, can_surge=True)
    assert actions == [StartReplica("r3", "v2"), StartReplica("r4", "v2")]
    assert {r.replica_id for r in state.running()} == {"r1", "r2"}  # old ones still serve
    state.on_started("r3", "/tmp/r3.sock")
    actions = state.reconcile(now=2)
    assert len(actions) == 1 and isinstance(actions[0], StopReplica) and actions[0].graceful
    assert {r.replica_id for r in state.running()} == {
        "r3",
        next(r for r in ("r1", "r2") if r != actions[0].replica_id),
    }
    stop_all(state, actions)
    state.on_started("r4", "/tmp/r4.sock")
    actions = state.reconcile(now=3)
    stop_all(state, actions)
    state.reconcile(now=3)
    assert state.status == DeploymentStatus.HEALTHY
    assert {r.replica_id for r in state.running()} == {"r3", "r4"}


def test_rolling_update_without_room_stops_one_old_replica_first() -> None:
    state = new_state()
    state.deploy("v1", DeploymentConfig(num_replicas=2))
    start_all(state, state.reconcile(now=0))
    state.deploy("v2", DeploymentConfig(num_replicas=2))
    actions = state.reconcile(now=1, can_surge=False)
    stops = [a for a in actions if isinstance(a, StopReplica)]
    starts = [a for a in actions if isinstance(a, StartReplica)]
    assert len(stops) == 1 and len(starts) == 1
    assert len(state.running()) == 1  # one old replica keeps serving


def test_config_only_change_reconfigures_in_place() -> None:
    state = new_state()
    state.deploy("v1", DeploymentConfig(num_replicas=1, user_config={"a": 1}))
    start_all(state, state.reconcile(now=0))
    state.reconcile(now=0)
    state.deploy("v1", DeploymentConfig(num_replicas=1, user_config={"a": 2}))
    assert state.reconcile(now=1) == [ReconfigureReplica("r1", {"a": 2})]
    assert state.reconcile(now=1) == []
    assert state.status == DeploymentStatus.UPDATING  # until the replica has applied it
    state.on_reconfigured("r1", {"a": 2})
    state.reconcile(now=1)
    assert state.status == DeploymentStatus.HEALTHY


def test_scale_down_stops_newest_first_and_delete_stops_all() -> None:
    state = new_state()
    state.deploy("v1", DeploymentConfig(num_replicas=3))
    start_all(state, state.reconcile(now=0))
    state.deploy("v1", DeploymentConfig(num_replicas=1))
    actions = state.reconcile(now=1)
    assert sorted(a.replica_id for a in actions) == ["r2", "r3"]
    stop_all(state, actions)
    state.delete()
    actions = state.reconcile(now=2)
    assert actions == [StopReplica("r1", graceful=True)]
    assert not state.finished
    stop_all(state, actions)
    assert state.finished


def test_constructor_failures_end_in_deploy_failed() -> None:
    state = new_state()
    state.deploy("v1", DeploymentConfig(num_replicas=1))
    now = 0.0
    for _ in range(3):
        (action,) = state.reconcile(now=now)
        state.on_start_failed(action.replica_id, "ValueError: broken", now)
        now += 10  # past the back-off
    assert state.status == DeploymentStatus.DEPLOY_FAILED
    assert "broken" in state.message and "3 times" in state.message
    assert state.reconcile(now=now) == []
    # A new version tries again.
    state.deploy("v2", DeploymentConfig(num_replicas=1))
    assert state.reconcile(now=now) == [StartReplica("r4", "v2")]


def test_start_failure_backs_off_before_retrying() -> None:
    state = new_state()
    state.deploy("v1", DeploymentConfig(num_replicas=1))
    (action,) = state.reconcile(now=0)
    state.on_start_failed(action.replica_id, "err", now=0)
    assert state.reconcile(now=0.1) == []
    assert len(state.reconcile(now=0.5)) == 1


def test_unhealthy_replica_is_killed_and_replaced() -> None:
    state = new_state()
    state.deploy("v1", DeploymentConfig(num_replicas=2))
    start_all(state, state.reconcile(now=0))
    state.reconcile(now=0)
    actions = state.on_unhealthy("r1", "health check timed out")
    assert actions == [StopReplica("r1", graceful=False)]
    assert state.replicas["r1"].state == ReplicaState.STOPPING
    assert [r.replica_id for r in state.running()] == ["r2"]
    assert state.on_unhealthy("r1", "again") == []
    assert state.reconcile(now=1) == [StartReplica("r3", "v1")]
    assert state.status == DeploymentStatus.UNHEALTHY
    stop_all(state, actions)
    state.on_started("r3", "/tmp/r3.sock")
    state.reconcile(now=2)
    assert state.status == DeploymentStatus.HEALTHY


def test_autoscaling_keeps_its_count_across_config_only_redeploys() -> None:
    auto = AutoscalingConfig(min_replicas=1, max_replicas=5)
    state = new_state()
    state.deploy("v1", DeploymentConfig(autoscaling_config=auto))
    state.set_num_replicas(4)
    assert state.status == DeploymentStatus.UPDATING
    state.reconcile(now=0)
    assert state.status == DeploymentStatus.UPSCALING
    state.deploy("v1", DeploymentConfig(autoscaling_config=AutoscalingConfig(min_replicas=1, max_replicas=3)))
    assert state.target.num_replicas == 3


def test_autoscaling_policy_scales_up_after_delay_and_down_after_delay() -> None:
    policy = AutoscalingPolicy(
        AutoscalingConfig(
            min_replicas=1,
            max_replicas=4,
            target_ongoing_requests=2,
            look_back_period_s=1.0,
            upscale_delay_s=2.0,
            downscale_delay_s=5.0,
        )
    )
    policy.record(0.0, 8)
    assert policy.desired(1) == 4
    assert policy.decide(0.0, 1) == 1  # wanted, but not for long enough
    policy.record(1.0, 8)
    assert policy.decide(1.0, 1) == 1
    policy.record(2.0, 8)
    assert policy.decide(2.0, 1) == 4
    # Load drops: the look-back window forgets the old samples; down only after 5 s.
    policy.record(3.5, 0)
    assert policy.desired(4) == 1
    assert policy.decide(3.5, 4) == 4
    policy.record(6.0, 0)
    assert policy.decide(6.0, 4) == 4
    policy.record(8.6, 0)
    assert policy.decide(8.6, 4) == 1


def test_autoscaling_policy_clamps_and_resets_on_mixed_signals() -> None:
    policy = AutoscalingPolicy(
        AutoscalingConfig(
            min_replicas=2, max_replicas=3, target_ongoing_requests=1, look_back_period_s=0.5, upscale_delay_s=1
        )
    )
    policy.record(0, 100)
    assert policy.desired(2) == 3
    policy.decide(0, 2)
    policy.record(0.8, 2)  # back to target: the pending upscale is forgotten
    assert policy.decide(0.8, 2) == 2
    policy.record(1.5, 100)
    assert policy.decide(1.5, 2) == 2
    policy.record(2.6, 100)
    assert policy.decide(2.6, 2) == 3
    zero = AutoscalingPolicy(AutoscalingConfig(min_replicas=0, max_replicas=2, downscale_delay_s=0, upscale_delay_s=0))
    zero.record(0, 0)
    assert zero.decide(0, 1) == 0
    zero.record(1, 3)
    assert zero.decide(1, 0) == 1
