"""The serve controller: an async actor that owns applications, deployments, replicas and the proxy.

Decisions live in :mod:`shoal.serve._deployment_state` and
:mod:`shoal.serve._autoscaling`; this module is their asyncio shell. It
starts and stops replica actors, checks their health, polls their load,
and publishes route tables and replica sets that routers long-poll with
:meth:`ServeController.listen`. No request passes through it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import shutil
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import shoal
from shoal.serve._autoscaling import AutoscalingPolicy
from shoal.serve._constants import (
    CONTROL_LOOP_PERIOD_S,
    METRICS_PERIOD_S,
    ROUTES_KEY,
    SLOW_START_WARNING_S,
    replicas_key,
)
from shoal.serve._deployment_state import (
    DeploymentState,
    DeploymentStatus,
    ReconfigureReplica,
    ReplicaState,
    StartReplica,
    StopReplica,
)
from shoal.serve._loop import await_ref
from shoal.serve._proxy import ProxyActor
from shoal.serve._replica import ReplicaActor
from shoal.serve.config import HTTPOptions
from shoal.serve.deployment import DeploymentSpec

__all__ = ["ServeController", "token_path"]

logger = logging.getLogger("shoal.serve")


def token_path(port: int) -> str:
    """Where the controller leaves the admin token for the proxy on ``port`` (mode 0600)."""
    return os.path.join(tempfile.gettempdir(), f"shoal-serve-{os.getuid()}", f"proxy-{port}.token")


@dataclass
class _App:
    name: str
    route_prefix: str | None
    ingress: str
    deployments: list[str]
    deployed_at: float
    status: str = "DEPLOYING"
    message: str = ""
    deleting: bool = False
    ever_running: bool = False


@dataclass
class _Replica:
    handle: Any
    app: str
    deployment: str
    socket_path: str
    next_health_check: float = 0.0
    checking: bool = False
    ongoing: int = 0
    created_at: float = field(default_factory=time.monotonic)
    warned_slow_start: bool = False


@dataclass
class _Deployment:
    state: DeploymentState
    spec: DeploymentSpec
    policy: AutoscalingPolicy | None = None
    published: tuple[Any, ...] = field(default_factory=tuple)


class ServeController:
    """The detached actor behind ``serve.start``; see the module docstring."""

    def __init__(self, http_options: HTTPOptions) -> None:
        self._http = http_options
        self._token = secrets.token_hex(16)
        self._socket_dir = tempfile.mkdtemp(prefix="shoal-serve-")
        os.chmod(self._socket_dir, 0o700)
        self._apps: dict[str, _App] = {}
        self._deployments: dict[tuple[str, str], _Deployment] = {}
        self._replicas: dict[str, _Replica] = {}
        self._published: dict[tuple[str, ...], tuple[int, Any]] = {}
        self._changed = asyncio.Event()
        self._router_queued: dict[str, tuple[float, dict[tuple[str, str], int]]] = {}
        self._proxy: Any = None
        self._proxy_port: int | None = None
        self._loop_task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._shutting_down = False
        self._shutdown_task: asyncio.Task[None] | None = None
        self._replica_cls = shoal.remote(ReplicaActor)
        self._token_file: str | None = None

    # -- startup -------------------------------------------------------------

    async def start(self) -> dict[str, Any]:
        """Start the HTTP proxy and the control loop; returns where the proxy listens."""
        if self._proxy is None:
            proxy = shoal.remote(ProxyActor).options(num_cpus=0, max_concurrency=100)
            self._proxy = proxy.remote(self._http, self._token)
            info = await await_ref(self._proxy.ready.remote())
            self._proxy_port = info["port"]
            path = token_path(info["port"])
            os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(self._token)
            self._token_file = path
        if self._loop_task is None:
            self._loop_task = asyncio.get_running_loop().create_task(self._control_loop())
            self._publish(ROUTES_KEY, [])
        return {"host": self._http.host, "port": self._proxy_port}

    async def http_options(self) -> HTTPOptions:
        return self._http

    # -- long poll -------------------------------------------------------------

    def _publish(self, key: tuple[str, ...], value: Any) -> None:
        version = self._published.get(key, (0, None))[0] + 1
        self._published[key] = (version, value)
        event, self._changed = self._changed, asyncio.Event()
        event.set()

    async def listen(self, known: dict[tuple[str, ...], int], timeout_s: float) -> dict[tuple[str, ...], Any]:
        """Values under ``known``'s keys whose version differs from the caller's, once there is one."""
        deadline = time.monotonic() + timeout_s
        if self._shutting_down:
            # Everything is going away: say so once, then let the caller wait out its poll.
            if any(v != -2 for v in known.values()):
                return {key: (-2, None) for key in known}
            await asyncio.sleep(timeout_s)
            return {}
        while True:
            updates = {}
            for key, version in known.items():
                current = self._published.get(key, (0, None))
                if current[0] != version:
                    updates[key] = current
            if updates:
                return updates
            if self._shutting_down:
                return {key: (-2, None) for key in known}
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return {}
            try:
                await asyncio.wait_for(self._changed.wait(), remaining)
            except TimeoutError:
                return {}

    def _publish_routes(self) -> None:
        routes = [
            (app.route_prefix, app.name, app.ingress)
            for app in self._apps.values()
            if app.route_prefix is not None and not app.deleting
        ]
        self._publish(ROUTES_KEY, sorted(routes))

    def _publish_replicas(self, key: tuple[str, str], dep: _Deployment) -> None:
        value: dict[str, Any] | None
        if dep.state.deleting and not dep.state.running():
            value = None
        else:
            cfg = dep.spec.config
            value = {
                "replicas": sorted((r.replica_id, r.socket_path) for r in dep.state.running()),
                "max_ongoing": cfg.max_ongoing_requests,
                "max_queued": cfg.max_queued_requests,
            }
        snapshot = (value,) if value is None else (tuple(value["replicas"]), value["max_ongoing"], value["max_queued"])
        if snapshot != dep.published:
            dep.published = snapshot
            self._publish(replicas_key(*key), value)

    # -- applications ------------------------------------------------------------

    async def deploy_application(
        self, name: str, route_prefix: str | None, ingress: str, specs: list[DeploymentSpec]
    ) -> None:
        """Deploy (or update) an application; returns at once, see :meth:`wait_for_application`."""
        if self._shutting_down:
            raise RuntimeError("serve is shutting down")
        if route_prefix is not None:
            for other in self._apps.values():
                if other.name != name and other.route_prefix == route_prefix and not other.deleting:
                    raise ValueError(
                        f"route_prefix {route_prefix!r} is already used by application {other.name!r}; "
                        "pick another prefix or delete that application"
                    )
        app = self._apps.get(name)
        names = [s.name for s in specs]
        if app is not None and app.deleting:
            raise RuntimeError(f"application {name!r} is being deleted; wait until it is gone before redeploying")
        if app is not None:
            for old_name in app.deployments:
                if old_name not in names:
                    self._deployments[(name, old_name)].state.delete()
        self._apps[name] = _App(name, route_prefix, ingress, names, time.time())
        for spec in specs:
            key = (name, spec.name)
            dep = self._deployments.get(key)
            if dep is None or dep.state.finished:
                state = DeploymentState(name, spec.name, new_id=lambda: uuid.uuid4().hex[:8])
                dep = _Deployment(state, spec)
                self._deployments[key] = dep
            dep.spec = spec
            dep.state.deploy(spec.version, spec.config)
            auto = spec.config.autoscaling_config
            if auto is None:
                dep.policy = None
            elif dep.policy is None or dep.policy.config != auto:
                dep.policy = AutoscalingPolicy(auto)
            self._publish_replicas(key, dep)
            # Limits may have changed for replicas that keep running.
            for rec in dep.state.running():
                replica = self._replicas.get(rec.replica_id)
                if replica is not None:
                    self._spawn(
                        self._quiet(await_ref(replica.handle.update_limits.remote(spec.config.max_ongoing_requests)))
                    )
        self._publish_routes()
        self._wake.set()

    async def deploy_config(self, config: dict[str, Any]) -> dict[str, Any]:
        """Deploy a config file's applications (``shoal serve deploy``); apps not in it are deleted."""
        from shoal.serve.schema import ServeDeploySchema, build_app_from_config

        schema = ServeDeploySchema.parse(config)
        names = {a.name for a in schema.applications}
        builds = [build_app_from_config.remote(a.to_dict(), schema.working_dir) for a in schema.applications]
        results = [await await_ref(ref) for ref in builds]
        for app_cfg, (ingress, specs) in zip(schema.applications, results, strict=True):
            await self.deploy_application(app_cfg.name, app_cfg.route_prefix, ingress, specs)
        for name in list(self._apps):
            if name not in names:
                await self.delete_application(name)
        return {"deployed": sorted(names)}

    async def delete_application(self, name: str) -> None:
        """Start deleting an application (routes first, then replicas)."""
        app = self._apps.get(name)
        if app is None:
            return
        app.deleting = True
        for dep_name in app.deployments:
            dep = self._deployments.get((name, dep_name))
            if dep is not None:
                dep.state.delete()
        self._publish_routes()
        self._wake.set()

    async def wait_for_application(self, name: str, timeout_s: float, deleted: bool = False) -> dict[str, Any]:
        """Wait until the app is RUNNING or DEPLOY_FAILED (or gone, when ``deleted``); returns its status."""
        deadline = time.monotonic() + timeout_s
        while True:
            app = self._apps.get(name)
            if deleted and app is None:
                return {"status": "NOT_STARTED", "message": ""}
            if app is None:
                return {"status": "NOT_STARTED", "message": f"application {name!r} does not exist"}
            if not deleted and app.status in ("RUNNING", "DEPLOY_FAILED"):
                return {"status": app.status, "message": app.message}
            if time.monotonic() >= deadline:
                return {"status": app.status, "message": app.message}
            await asyncio.sleep(0.02)

    async def get_app_info(self, name: str) -> dict[str, Any] | None:
        app = self._apps.get(name)
        if app is None or app.deleting:
            return None
        return {"ingress": app.ingress, "deployments": list(app.deployments), "route_prefix": app.route_prefix}

    async def list_applications(self) -> list[str]:
        return [name for name, app in self._apps.items() if not app.deleting]

    def _app_status(self, app: _App) -> tuple[str, str]:
        if app.deleting:
            return "DELETING", ""
        states = [self._deployments[(app.name, d)].state for d in app.deployments if (app.name, d) in self._deployments]
        statuses = {s.status for s in states}
        failed = [s for s in states if s.status == DeploymentStatus.DEPLOY_FAILED]
        if failed:
            return "DEPLOY_FAILED", "; ".join(f"Deployment {s.name!r}: {s.message}" for s in failed)
        serving = {DeploymentStatus.HEALTHY, DeploymentStatus.UPSCALING, DeploymentStatus.DOWNSCALING}
        if statuses <= serving and all(s.status == DeploymentStatus.HEALTHY or s.running() for s in states):
            app.ever_running = True
            return "RUNNING", ""
        if DeploymentStatus.UNHEALTHY in statuses and app.ever_running:
            msgs = [s.message for s in states if s.status == DeploymentStatus.UNHEALTHY]
            return "UNHEALTHY", "; ".join(msgs)
        return ("RUNNING", "") if app.ever_running else ("DEPLOYING", "")

    async def status(self) -> dict[str, Any]:
        """Every application's and deployment's status (what ``serve.status()`` shows)."""
        apps: dict[str, Any] = {}
        for app in self._apps.values():
            deployments = {}
            for dep_name in app.deployments:
                dep = self._deployments.get((app.name, dep_name))
                if dep is None:
                    continue
                st = dep.state
                deployments[dep_name] = {
                    "status": st.status.value,
                    "message": st.message,
                    "replica_states": st.replica_states(),
                    "target_num_replicas": 0 if st.target is None else st.target.num_replicas,
                }
            apps[app.name] = {
                "status": app.status,
                "message": app.message,
                "route_prefix": app.route_prefix,
                "last_deployed_time_s": app.deployed_at,
                "deployments": deployments,
            }
        proxy = {"host": self._http.host, "port": self._proxy_port, "status": "HEALTHY" if self._proxy else "NONE"}
        return {"applications": apps, "proxy": proxy}

    # -- routers' reports ---------------------------------------------------------

    async def record_router_metrics(self, router_id: str, queued: dict[tuple[str, str], int]) -> None:
        self._router_queued[router_id] = (time.monotonic(), queued)

    async def replica_unreachable(self, replica_id: str) -> None:
        """A router lost its connection to the replica: check its health now."""
        replica = self._replicas.get(replica_id)
        if replica is not None:
            replica.next_health_check = 0.0
            self._wake.set()

    # -- the control loop ------------------------------------------------------------

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    @staticmethod
    async def _quiet(awaitable: Any) -> None:
        try:
            await awaitable
        except Exception:  # noqa: BLE001 - best effort; health checks find real failures
            pass

    async def _control_loop(self) -> None:
        next_metrics = 0.0
        while True:
            try:
                now = time.monotonic()
                if now >= next_metrics:
                    next_metrics = now + METRICS_PERIOD_S
                    await self._autoscale(now)
                self._reconcile(now)
                self._health_checks(now)
            except Exception:
                logger.exception("serve controller: control loop pass failed")
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), CONTROL_LOOP_PERIOD_S)
            except TimeoutError:
                pass

    def _can_surge(self, spec: DeploymentSpec) -> bool:
        needed = spec.config.actor_options()
        available = shoal.available_resources()
        for name, key in (("num_cpus", "CPU"), ("num_gpus", "GPU")):
            amount = needed.get(name) or 0
            if amount and available.get(key, 0.0) < amount:
                return False
        for name, amount in (needed.get("resources") or {}).items():
            if amount and available.get(name, 0.0) < amount:
                return False
        return True

    def _reconcile(self, now: float) -> None:
        for key, dep in list(self._deployments.items()):
            state = dep.state
            rolling = any(
                r.version != (state.target.version if state.target else None) for r in state.replicas.values()
            )
            can_surge = self._can_surge(dep.spec) if rolling else True
            for action in state.reconcile(now, can_surge=can_surge):
                self._execute(key, dep, action)
            self._publish_replicas(key, dep)
            if state.finished:
                del self._deployments[key]
        for app in list(self._apps.values()):
            if app.deleting:
                if not any((app.name, d) in self._deployments for d in app.deployments):
                    del self._apps[app.name]
                continue
            app.status, app.message = self._app_status(app)

    def _execute(self, key: tuple[str, str], dep: _Deployment, action: Any) -> None:
        if isinstance(action, StartReplica):
            self._spawn(self._start_replica(key, dep, action.replica_id))
        elif isinstance(action, StopReplica):
            self._spawn(self._stop_replica(dep, action.replica_id, action.graceful))
        elif isinstance(action, ReconfigureReplica):
            self._spawn(self._reconfigure_replica(dep, action.replica_id, action.user_config))

    async def _start_replica(self, key: tuple[str, str], dep: _Deployment, replica_id: str) -> None:
        spec = dep.spec
        path = os.path.join(self._socket_dir, f"{replica_id}.sock")
        options = spec.config.actor_options()
        try:
            handle = self._replica_cls.options(**options, max_concurrency=100).remote(
                key[0],
                key[1],
                replica_id,
                spec.serialized_def,
                spec.serialized_init,
                spec.is_function,
                spec.config,
                path,
            )
        except Exception as e:  # noqa: BLE001 - bad actor options end up here
            dep.state.on_start_failed(replica_id, f"{type(e).__name__}: {e}", time.monotonic())
            self._wake.set()
            return
        self._replicas[replica_id] = _Replica(handle, key[0], key[1], path)
        try:
            info = await await_ref(handle.initialize.remote())
        except Exception as e:  # noqa: BLE001 - the user's constructor may raise anything
            self._replicas.pop(replica_id, None)
            self._kill(handle)
            message = str(e)
            logger.error("replica %s of %s failed to start: %s", replica_id, key[1], message)
            dep.state.on_start_failed(replica_id, message, time.monotonic())
        else:
            dep.state.on_started(replica_id, info["socket_path"])
            replica = self._replicas.get(replica_id)
            if replica is not None:
                replica.next_health_check = time.monotonic() + spec.config.health_check_period_s
            if dep.state.replicas.get(replica_id) is None:
                # Stopped while it was starting.
                self._replicas.pop(replica_id, None)
                self._kill(handle)
        self._wake.set()

    async def _stop_replica(self, dep: _Deployment, replica_id: str, graceful: bool) -> None:
        replica = self._replicas.pop(replica_id, None)
        if replica is not None:
            cfg = dep.spec.config
            if graceful:
                wait_loop = 0.0 if self._shutting_down else cfg.graceful_shutdown_wait_loop_s
                timeout = cfg.graceful_shutdown_timeout_s
                try:
                    await await_ref(replica.handle.drain.remote(wait_loop, timeout), timeout + wait_loop + 5)
                except Exception:  # noqa: BLE001 - a dying replica cannot drain; kill it anyway
                    pass
            self._kill(replica.handle)
            try:
                os.unlink(replica.socket_path)
            except OSError:
                pass
        dep.state.on_stopped(replica_id)
        self._wake.set()

    async def _reconfigure_replica(self, dep: _Deployment, replica_id: str, user_config: Any) -> None:
        replica = self._replicas.get(replica_id)
        if replica is None:
            return
        try:
            await await_ref(replica.handle.reconfigure.remote(user_config))
        except Exception as e:  # noqa: BLE001 - a failing reconfigure makes the replica unhealthy
            for action in dep.state.on_unhealthy(replica_id, f"reconfigure failed: {e}"):
                self._execute((dep.state.app_name, dep.state.name), dep, action)
        else:
            dep.state.on_reconfigured(replica_id, user_config)
        self._wake.set()

    @staticmethod
    def _kill(handle: Any) -> None:
        try:
            shoal.kill(handle)
        except Exception:  # noqa: BLE001 - already dead
            pass

    def _health_checks(self, now: float) -> None:
        for replica_id, replica in list(self._replicas.items()):
            if replica.checking or now < replica.next_health_check or replica.next_health_check == -1:
                continue
            dep = self._deployments.get((replica.app, replica.deployment))
            if dep is None:
                continue
            rec = dep.state.replicas.get(replica_id)
            if rec is not None and rec.state == ReplicaState.STARTING:
                self._warn_slow_start(dep, replica_id, replica, now)
            if rec is None or rec.state != ReplicaState.RUNNING:
                continue
            replica.checking = True
            self._spawn(self._check(dep, replica_id, replica))

    @staticmethod
    def _warn_slow_start(dep: _Deployment, replica_id: str, replica: _Replica, now: float) -> None:
        waited = now - replica.created_at
        if replica.warned_slow_start or waited < SLOW_START_WARNING_S:
            return
        replica.warned_slow_start = True
        dep.state.message = (
            f"Replica {replica_id} has been starting for {waited:.0f} s. It asks for "
            f"{dep.spec.config.actor_options()}; if the cluster lacks those resources it waits until they free up "
            f"(available now: {shoal.available_resources()})."
        )
        logger.warning("deployment %s: %s", dep.state.name, dep.state.message)

    async def _check(self, dep: _Deployment, replica_id: str, replica: _Replica) -> None:
        cfg = dep.spec.config
        try:
            await await_ref(replica.handle.check_health.remote(), cfg.health_check_timeout_s)
        except Exception as e:  # noqa: BLE001 - any failure, a timeout or a dead actor means unhealthy
            reason = "health check timed out" if isinstance(e, TimeoutError) else f"{type(e).__name__}: {e}"
            logger.warning("replica %s of %s failed its health check: %s", replica_id, dep.state.name, reason)
            key = (dep.state.app_name, dep.state.name)
            actions = dep.state.on_unhealthy(replica_id, reason)
            # Routers hear that it is gone before it is killed.
            self._publish_replicas(key, dep)
            for action in actions:
                self._execute(key, dep, action)
            self._wake.set()
        finally:
            replica.checking = False
            replica.next_health_check = time.monotonic() + cfg.health_check_period_s

    async def _autoscale(self, now: float) -> None:
        auto = [
            (key, dep) for key, dep in self._deployments.items() if dep.policy is not None and not dep.state.deleting
        ]
        if not auto:
            return
        queued: dict[tuple[str, str], int] = {}
        for router_id, (seen, per_router) in list(self._router_queued.items()):
            if now - seen > 3 * METRICS_PERIOD_S:
                del self._router_queued[router_id]
                continue
            for (app_name, dep_name), n in per_router.items():
                queued[(app_name, dep_name)] = queued.get((app_name, dep_name), 0) + n

        async def ongoing(replica_id: str) -> int:
            replica = self._replicas.get(replica_id)
            if replica is None:
                return 0
            try:
                replica.ongoing = await await_ref(replica.handle.num_ongoing.remote(), 2.0)
            except Exception:  # noqa: BLE001 - a dead replica counts as idle; health checks handle it
                replica.ongoing = 0
            return replica.ongoing

        for key, dep in auto:
            state = dep.state
            running = state.running()
            counts = await asyncio.gather(*(ongoing(r.replica_id) for r in running))
            total = sum(counts) + queued.get(key, 0)
            assert dep.policy is not None and state.target is not None
            dep.policy.record(now, total)
            decision = dep.policy.decide(now, state.target.num_replicas)
            if decision != state.target.num_replicas:
                logger.info("autoscaling %s from %d to %d replicas", key[1], state.target.num_replicas, decision)
                state.set_num_replicas(decision)

    # -- shutdown -------------------------------------------------------------------

    async def request_shutdown(self) -> dict[str, Any]:
        """Start shutting down in the background (the HTTP admin endpoint answers first)."""
        if self._shutdown_task is None:
            self._shutdown_task = asyncio.get_running_loop().create_task(self.shutdown())
        return {"shutting_down": True}

    async def is_shutting_down(self) -> bool:
        return self._shutting_down

    async def shutdown(self) -> None:
        """Stop the proxy and every replica; then the caller kills this actor."""
        self._shutting_down = True
        event, self._changed = self._changed, asyncio.Event()
        event.set()
        if self._proxy is not None:
            try:
                await await_ref(self._proxy.stop.remote(), 10)
            except Exception:  # noqa: BLE001 - a dead proxy is stopped enough
                pass
            self._kill(self._proxy)
            self._proxy = None
        for name in list(self._apps):
            await self.delete_application(name)
        deadline = time.monotonic() + 60
        while self._deployments and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        for replica in self._replicas.values():
            self._kill(replica.handle)
        self._replicas.clear()
        shutil.rmtree(self._socket_dir, ignore_errors=True)
        if self._token_file is not None:
            try:
                os.unlink(self._token_file)
            except OSError:
                pass
