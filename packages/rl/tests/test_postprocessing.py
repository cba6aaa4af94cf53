"""GAE, n-step transitions, schedules and replay buffers against hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest

from shoal.rl import Columns
from shoal.rl.utils.postprocessing import compute_gae, n_step_transitions
from shoal.rl.utils.replay_buffers import PrioritizedReplayBuffer, ReplayBuffer, make_replay_buffer
from shoal.rl.utils.schedules import PiecewiseSchedule, make_schedule


def reference_gae(rewards, vf, next_vf, dones, gamma, lam):
    """Textbook per-env loop."""
    adv = np.zeros_like(rewards)
    for i in range(rewards.shape[1]):
        running = 0.0
        for t in reversed(range(rewards.shape[0])):
            delta = rewards[t, i] + gamma * next_vf[t, i] - vf[t, i]
            running = delta + gamma * lam * (0.0 if dones[t, i] else 1.0) * running
            adv[t, i] = running
    return adv


def test_gae_matches_the_textbook_loop() -> None:
    rng = np.random.default_rng(0)
    rewards = rng.normal(size=(7, 3)).astype(np.float32)
    vf = rng.normal(size=(7, 3)).astype(np.float32)
    next_vf = rng.normal(size=(7, 3)).astype(np.float32)
    term = np.zeros((7, 3), bool)
    trunc = np.zeros((7, 3), bool)
    term[2, 0] = True
    trunc[4, 1] = True
    next_vf[term] = 0.0
    adv, targets = compute_gae(rewards, vf, next_vf, term, trunc, 0.9, 0.8)
    expected = reference_gae(rewards, vf, next_vf, term | trunc, 0.9, 0.8)
    assert np.allclose(adv, expected, atol=1e-5)
    assert np.allclose(targets, adv + vf)


def test_gae_with_lambda_one_and_zero_values_is_the_discounted_return() -> None:
    rewards = np.ones((4, 1), np.float32)
    zeros = np.zeros((4, 1), np.float32)
    term = np.array([[False], [False], [False], [True]])
    adv, _ = compute_gae(rewards, zeros, zeros, term, np.zeros_like(term), 0.5, 1.0)
    assert np.allclose(adv[:, 0], [1 + 0.5 + 0.25 + 0.125, 1 + 0.5 + 0.25, 1.5, 1.0])


def test_n_step_transitions_stop_at_episode_and_fragment_ends() -> None:
    # One env, 5 steps; the episode terminates at step 2.
    obs = np.arange(5, dtype=np.float32).reshape(5, 1, 1)
    batch = {
        Columns.OBS: obs,
        Columns.NEXT_OBS: obs + 0.5,
        Columns.ACTIONS: np.zeros((5, 1), np.int64),
        Columns.REWARDS: np.array([[1.0], [2.0], [4.0], [8.0], [16.0]], np.float32),
        Columns.TERMINATEDS: np.array([[False], [False], [True], [False], [False]]),
        Columns.TRUNCATEDS: np.zeros((5, 1), bool),
    }
    out = n_step_transitions(batch, n_step=2, gamma=0.5)
    assert np.allclose(out[Columns.REWARDS], [1 + 0.5 * 2, 2 + 0.5 * 4, 4, 8 + 0.5 * 16, 16])
    assert np.allclose(out[Columns.NEXT_OBS][:, 0], [1.5, 2.5, 2.5, 4.5, 4.5])
    assert out[Columns.TERMINATEDS].tolist() == [False, True, True, False, False]
    assert np.allclose(out[Columns.DISCOUNTS], [0.25, 0.25, 0.5, 0.25, 0.5])


def test_piecewise_schedule() -> None:
    s = make_schedule([(0, 1.0), (100, 0.1)], "epsilon")
    assert s(0) == 1.0 and s(50) == pytest.approx(0.55) and s(100) == pytest.approx(0.1) and s(10**6) == 0.1
    assert make_schedule(0.3, "lr")(12345) == 0.3
    with pytest.raises(ValueError, match="must not decrease"):
        PiecewiseSchedule([(10, 1.0), (5, 0.0)])
    with pytest.raises(ValueError, match="epsilon must be a number or a list"):
        make_schedule("fast", "epsilon")


def test_uniform_replay_buffer_ring() -> None:
    buf = ReplayBuffer(capacity=5, seed=0)
    buf.add({"x": np.arange(3)})
    buf.add({"x": np.arange(3, 7)})
    assert len(buf) == 5 and buf.num_added_lifetime == 7
    batch, _ = buf.sample(100)
    # Rows 0 and 1 were overwritten by 5 and 6.
    assert set(batch["x"].tolist()) == {2, 3, 4, 5, 6}
    assert np.all(batch["weights"] == 1.0)


def test_prioritized_replay_samples_in_proportion_to_priority() -> None:
    buf = PrioritizedReplayBuffer(capacity=4, alpha=1.0, beta=1.0, eps=0.0, seed=0)
    idx = buf.add({"x": np.arange(4)})
    buf.update_priorities(idx, np.array([1.0, 1.0, 2.0, 4.0]))
    batch, _ = buf.sample(8000)
    freq = np.bincount(batch["x"], minlength=4) / 8000
    assert np.allclose(freq, [1 / 8, 1 / 8, 2 / 8, 4 / 8], atol=0.02)
    # Importance weights (N * P)^-beta, normalized by the largest (the rarest row).
    w = {int(x): float(wt) for x, wt in zip(batch["x"], batch["weights"], strict=True)}
    assert w[0] == pytest.approx(1.0) and w[3] == pytest.approx(0.25) and w[2] == pytest.approx(0.5)


def test_prioritized_replay_new_rows_get_the_max_priority_and_state_round_trips() -> None:
    buf = PrioritizedReplayBuffer(capacity=8, alpha=1.0, eps=0.0, seed=1)
    idx = buf.add({"x": np.arange(2)})
    buf.update_priorities(idx, np.array([3.0, 1.0]))
    buf.add({"x": np.array([2])})
    batch, _ = buf.sample(7000)
    freq = np.bincount(batch["x"], minlength=3) / 7000
    assert np.allclose(freq, [3 / 7, 1 / 7, 3 / 7], atol=0.02)
    copy = PrioritizedReplayBuffer(capacity=8, alpha=1.0, eps=0.0)
    copy.set_state(buf.get_state())
    assert len(copy) == 3
    assert np.array_equal(copy.sample(50)[0]["x"], buf.sample(50)[0]["x"])


def test_make_replay_buffer_checks_its_config() -> None:
    assert isinstance(make_replay_buffer({"type": "EpisodeReplayBuffer", "capacity": 3, "alpha": 0.6}), ReplayBuffer)
    assert isinstance(make_replay_buffer({"type": "PrioritizedEpisodeReplayBuffer"}), PrioritizedReplayBuffer)
    with pytest.raises(ValueError, match="replay_buffer_config\\['type'\\] must be one of"):
        make_replay_buffer({"type": "Reservoir"})
    with pytest.raises(ValueError, match="unknown keys \\['size'\\]"):
        make_replay_buffer({"size": 10})
    with pytest.raises(ValueError, match="capacity must be an integer >= 1"):
        make_replay_buffer({"capacity": 0})
