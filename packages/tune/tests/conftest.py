"""Fixtures for shoal.tune's tests: a runtime-free simulator of the trial runner.

``Sim`` drives a real :class:`TrialController` (with real search algorithms
and schedulers) but carries out its commands itself: each trial follows a
deterministic synthetic learning curve ``curve(config, iteration)``,
checkpoints are fake paths that remember an iteration, and events are
delivered round-robin. It counts the iterations computed, so tests can check
which trials a scheduler stops, pauses and promotes, and at what cost.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any

import pytest

from shoal.tune.execution import controller as c
from shoal.tune.schedulers import FIFOScheduler, TrialScheduler
from shoal.tune.search import BasicVariantGenerator, SearchAlgorithm


class Sim:
    def __init__(
        self,
        curve: Callable[[dict[str, Any], int], float],
        param_space: dict[str, Any],
        *,
        num_samples: int = 1,
        max_t: int = 10,
        scheduler: TrialScheduler | None = None,
        search_alg: SearchAlgorithm | None = None,
        slots: int = 2,
        metric: str = "score",
        mode: str = "max",
        fail: Callable[[str, int], bool] | None = None,
        **settings: Any,
    ) -> None:
        self.curve = curve
        self.max_t = max_t
        self.fail = fail or (lambda trial_id, it: False)
        self.scheduler = scheduler or FIFOScheduler()
        self.search_alg = search_alg or BasicVariantGenerator(random_state=0)
        self.search_alg.set_search_properties(metric, mode, param_space)
        self.scheduler.set_search_properties(metric, mode)
        self.search_alg._configure(param_space, num_samples)
        self.settings = c.ControllerSettings(
            trainable_name="sim",
            experiment_path="/sim",
            id_prefix="t",
            capacity={"CPU": float(slots)},
            resources_for=lambda config: ({"CPU": 1.0}, None, "PACK"),
            start_time=0.0,
            metric=metric,
            mode=mode,
            **settings,
        )
        self.ctl = c.TrialController(self.search_alg, self.scheduler, self.settings)
        self.events: deque[Any] = deque()
        self.iteration: dict[str, int] = {}
        self.compute = 0
        self.log: list[tuple[str, str]] = []  # (command name, trial id)
        self.starts: list[tuple[str, int]] = []  # (trial id, iteration it resumed from)
        self.paths: dict[str, int] = {}
        self.max_running = 0
        self.running: set[str] = set()
        self.checkpoint_every = 1

    def run(self, max_events: int = 100_000) -> Sim:
        self.apply(self.ctl.fill())
        n = 0
        while self.events:
            n += 1
            assert n < max_events, "simulation did not finish"
            self.apply(self.ctl.handle(self.events.popleft()))
        assert self.ctl.is_finished()
        return self

    def _step(self, trial: Any, run: int) -> None:
        tid = trial.trial_id
        it = self.iteration[tid] + 1
        self.iteration[tid] = it
        self.compute += 1
        if self.fail(tid, it):
            self.events.append(c.ErrorEvent(tid, run, RuntimeError(f"fail {tid}@{it}"), "tb"))
            return
        result: dict[str, Any] = {
            "score": self.curve(trial.config, it),
            "training_iteration": it,
            "time_total_s": float(it),
            "done": it >= self.max_t,
        }
        if self.checkpoint_every and it % self.checkpoint_every == 0:
            name = f"checkpoint_{it:06d}"
            self.paths[f"/sim/{tid}/{name}"] = it
            result["checkpoint_dir_name"] = name
        self.events.append(c.ResultEvent(tid, run, result))

    def apply(self, commands: list[Any]) -> None:
        for cmd in commands:
            name = type(cmd).__name__
            trial = getattr(cmd, "trial", None)
            self.log.append((name, trial.trial_id if trial is not None else ""))
            if isinstance(cmd, c.StartTrial):
                start = int(cmd.counters.get("iteration", 0)) if cmd.checkpoint is not None else 0
                self.iteration[trial.trial_id] = start
                self.starts.append((trial.trial_id, start))
                self.running.add(trial.trial_id)
                self.max_running = max(self.max_running, len(self.running))
                self._step(trial, cmd.run)
            elif isinstance(cmd, c.ContinueTrial):
                self._step(trial, cmd.run)
            elif isinstance(cmd, c.PauseTrial):
                self.running.discard(trial.trial_id)
                path = None
                if cmd.save:
                    it = self.iteration[trial.trial_id]
                    path = f"/sim/{trial.trial_id}/checkpoint_{it:06d}"
                self.events.append(c.PausedEvent(trial.trial_id, path, {"iteration": self.iteration[trial.trial_id]}))
            elif isinstance(cmd, c.SaveTrial):
                it = self.iteration[trial.trial_id]
                path = f"/sim/{trial.trial_id}/checkpoint_{it:06d}"
                self.events.append(c.SavedEvent(trial.trial_id, path, {"iteration": it}))
            elif isinstance(cmd, c.StopTrial):
                self.running.discard(trial.trial_id)

    def names(self, kind: str) -> list[str]:
        return [tid for name, tid in self.log if name == kind]

    def trial(self, trial_id: str) -> Any:
        return next(t for t in self.ctl.trials if t.trial_id == trial_id)


@pytest.fixture
def sim() -> type[Sim]:
    """The :class:`Sim` class (construct it with a curve and a param space)."""
    return Sim
