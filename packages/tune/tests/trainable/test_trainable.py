"""The class API used directly, and the function adapter, without a runtime."""

from __future__ import annotations

import os

import pytest

from shoal import tune
from shoal.tune.trainable import session
from shoal.tune.trainable.trainable import RESULT_DUPLICATE, wrap_function


class Counter(tune.Trainable):
    def setup(self, config):
        self.total = config.get("start", 0)

    def step(self):
        self.total += 1
        return {"total": self.total}

    def save_checkpoint(self, checkpoint_dir):
        with open(os.path.join(checkpoint_dir, "total"), "w") as f:
            f.write(str(self.total))

    def load_checkpoint(self, checkpoint):
        with open(os.path.join(checkpoint, "total")) as f:
            self.total = int(f.read())


def test_train_adds_tune_fields():
    t = Counter({"start": 10})
    first = t.train()
    assert first["total"] == 11 and first["training_iteration"] == 1 and first["done"] is False
    assert first["config"] == {"start": 10}
    for key in ("time_this_iter_s", "time_total_s", "pid", "hostname", "date", "timestamp", "trial_id"):
        assert key in first
    assert t.train()["training_iteration"] == 2 and t.iteration == 2


def test_save_and_restore_directory_checkpoints(tmp_path):
    t = Counter({"start": 0})
    t.train()
    t.train()
    ckpt = t.save(str(tmp_path / "c"))
    other = Counter({"start": 100})
    other.restore(ckpt)
    assert other.total == 2 and other.iteration == 2
    assert other.train()["training_iteration"] == 3


class DictState(tune.Trainable):
    def setup(self, config):
        self.v = 0

    def step(self):
        self.v += 5
        return {"v": self.v, "done": self.v >= 10}

    def save_checkpoint(self, checkpoint_dir):
        return {"v": self.v}

    def load_checkpoint(self, checkpoint):
        self.v = checkpoint["v"]


def test_dict_checkpoints_and_done(tmp_path):
    t = DictState()
    assert t.train()["done"] is False
    ckpt = t.save(str(tmp_path / "d"))
    assert t.train()["done"] is True
    fresh = DictState()
    fresh.restore(ckpt.path)
    assert fresh.v == 5


def test_missing_hooks_are_clear_errors(tmp_path):
    class Bare(tune.Trainable):
        pass

    with pytest.raises(NotImplementedError, match="must implement step"):
        Bare().train()
    with pytest.raises(NotImplementedError, match="save_checkpoint"):
        Bare().save(str(tmp_path / "x"))

    class BadStep(tune.Trainable):
        def step(self):
            return 3

    with pytest.raises(TypeError, match="must return a dict"):
        BadStep().train()


def test_reset_config_and_default_resources():
    class Resettable(Counter):
        def reset_config(self, new_config):
            self.total = new_config["start"]
            return True

    t = Resettable({"start": 1})
    t.train()
    assert t.reset({"start": 50}) and t.iteration == 0 and t.config == {"start": 50}
    assert not Counter({}).reset({"start": 1})
    assert Counter.default_resource_request({}) is None


def test_function_trainable_steps_one_report_at_a_time(tmp_path):
    calls = []

    def fn(config):
        for i in range(3):
            calls.append(i)
            tune.report({"i": i})

    cls = wrap_function(fn)
    ctx = session.TrialContext(trial_id="t", trial_dir=str(tmp_path))
    session._set_current(ctx)
    try:
        t = cls(config={"a": 1})
    finally:
        session._set_current(None)
    assert t.train()["i"] == 0
    assert calls == [0]  # the function waits in report() until the next train()
    assert t.train()["i"] == 1
    t.stop()
    assert not t.thread_alive()
    assert calls == [0, 1]


def test_function_end_and_errors():
    def two(config):
        tune.report({"i": 0})

    t = wrap_function(two)({})
    t.train()
    assert t.train() == {"done": True, RESULT_DUPLICATE: True}

    def boom(config):
        raise KeyError("k")

    with pytest.raises(KeyError):
        wrap_function(boom)({}).train()


def test_function_signature_is_checked():
    with pytest.raises(ValueError, match="must take one argument"):
        wrap_function(lambda a, b: None)
    with pytest.raises(ValueError, match="must take one argument"):
        wrap_function(lambda: None)
    wrap_function(lambda config, extra=1: None)
