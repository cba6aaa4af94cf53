"""PPO's loss and DQN's TD targets against the same quantities computed by hand from the module's outputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from gymnasium import spaces

from shoal.rl import Columns
from shoal.rl.algorithms.dqn import DQNConfig
from shoal.rl.algorithms.dqn.dqn_learner import DQNLearner
from shoal.rl.algorithms.dqn.dqn_rl_module import DQNTorchRLModule
from shoal.rl.algorithms.ppo import PPOConfig
from shoal.rl.algorithms.ppo.ppo_learner import PPOLearner
from shoal.rl.algorithms.ppo.ppo_rl_module import PPOTorchRLModule
from shoal.rl.core import RLModuleSpec

OBS_SPACE = spaces.Box(-1.0, 1.0, (4,), np.float32)
ACT_SPACE = spaces.Discrete(3)


def ppo_fragment(learner: PPOLearner, steps: int = 8, envs: int = 2) -> dict[str, np.ndarray]:
    """A ``[T, envs]`` fragment whose recorded log-probs put the ratios both inside and outside the clip range."""
    rng = np.random.default_rng(0)
    obs = rng.uniform(-1, 1, (steps, envs, 4)).astype(np.float32)
    actions = rng.integers(0, 3, (steps, envs))
    with torch.no_grad():
        out = learner.module.forward_train({Columns.OBS: torch.from_numpy(obs.reshape(-1, 4))})
    logits = out[Columns.ACTION_DIST_INPUTS].numpy().reshape(steps, envs, 3)
    logp_now = np.take_along_axis(torch.log_softmax(torch.from_numpy(logits), -1).numpy(), actions[..., None], -1)
    # log(ratio) spread over [-0.6, 0.6]: clip_param 0.2 clips the outer ones.
    log_ratio = np.linspace(-0.6, 0.6, steps * envs, dtype=np.float32).reshape(steps, envs)
    terminated = np.zeros((steps, envs), bool)
    terminated[3, 0] = True
    return {
        Columns.OBS: obs,
        Columns.ACTIONS: actions,
        Columns.ACTION_LOGP: (logp_now[..., 0] - log_ratio).astype(np.float32),
        # The behaviour policy's logits: perturbed, so the KL term is not zero.
        Columns.ACTION_DIST_INPUTS: (logits + rng.normal(0, 0.5, logits.shape)).astype(np.float32),
        Columns.VF_PREDS: rng.normal(size=(steps, envs)).astype(np.float32),
        Columns.NEXT_VF_PREDS: np.where(terminated, 0.0, rng.normal(size=(steps, envs))).astype(np.float32),
        Columns.REWARDS: rng.normal(size=(steps, envs)).astype(np.float32),
        Columns.TERMINATEDS: terminated,
        Columns.TRUNCATEDS: np.zeros((steps, envs), bool),
    }


def test_ppo_loss_is_clipped_surrogate_plus_value_kl_and_entropy_terms() -> None:
    cfg = PPOConfig().training(
        lr=0.0,  # Adam with lr 0 leaves the weights as they are, so the hand computation sees the same net
        train_batch_size=16,
        minibatch_size=16,
        num_epochs=1,
        clip_param=0.2,
        entropy_coeff=0.05,
        vf_loss_coeff=0.5,
        vf_clip_param=0.7,
        kl_coeff=0.3,
        kl_target=0.01,
        gamma=0.9,
        lambda_=0.8,
    )
    torch.manual_seed(0)
    learner = PPOLearner(cfg, RLModuleSpec(PPOTorchRLModule, OBS_SPACE, ACT_SPACE, {"fcnet_hiddens": [8]}))
    frag = ppo_fragment(learner)
    batch = learner.postprocess([frag])
    # Advantages come standardized.
    assert batch[Columns.ADVANTAGES].mean() == pytest.approx(0.0, abs=1e-5)
    assert batch[Columns.ADVANTAGES].std() == pytest.approx(1.0, abs=1e-4)

    t = {k: torch.from_numpy(np.asarray(v)) for k, v in batch.items()}
    with torch.no_grad():
        out = learner.module.forward_train({Columns.OBS: t[Columns.OBS]})
    log_probs = torch.log_softmax(out[Columns.ACTION_DIST_INPUTS], -1)
    logp = log_probs.gather(-1, t[Columns.ACTIONS].long()[:, None])[:, 0]
    ratio = torch.exp(logp - t[Columns.ACTION_LOGP])
    adv = t[Columns.ADVANTAGES]
    policy_loss = -torch.min(adv * ratio, adv * ratio.clamp(0.8, 1.2)).mean()
    unclipped = -(adv * ratio).mean()
    assert abs(float(policy_loss - unclipped)) > 1e-3, "the batch must exercise the clip"
    entropy = -(log_probs.exp() * log_probs).sum(-1).mean()
    old = torch.log_softmax(t[Columns.ACTION_DIST_INPUTS], -1)
    kl = (old.exp() * (old - log_probs)).sum(-1).mean()
    vf_err = (out[Columns.VF_PREDS] - t[Columns.VALUE_TARGETS]).pow(2)
    vf_loss = vf_err.clamp(0.0, 0.7).mean()
    assert float(vf_err.max()) > 0.7, "the batch must exercise vf_clip_param"
    total = policy_loss - 0.05 * entropy + 0.3 * kl + 0.5 * vf_loss

    metrics = learner.update([frag], timesteps=0)
    assert metrics["policy_loss"] == pytest.approx(float(policy_loss), abs=1e-5)
    assert metrics["entropy"] == pytest.approx(float(entropy), abs=1e-5)
    assert metrics["mean_kl_loss"] == pytest.approx(float(kl), abs=1e-5)
    assert metrics["vf_loss"] == pytest.approx(float(vf_loss), abs=1e-5)
    assert metrics["total_loss"] == pytest.approx(float(total), abs=1e-5)
    # Adaptive KL: above 2 x kl_target the coefficient grows by half.
    assert float(kl) > 0.02 and metrics["curr_kl_coeff"] == pytest.approx(0.45)
    assert metrics["num_module_steps_trained"] == 16


def test_ppo_minibatch_epochs_make_the_expected_number_of_updates() -> None:
    cfg = PPOConfig().training(lr=1e-3, train_batch_size=16, minibatch_size=4, num_epochs=3)
    learner = PPOLearner(cfg, RLModuleSpec(PPOTorchRLModule, OBS_SPACE, ACT_SPACE, {"fcnet_hiddens": [8]}))
    before = learner.get_weights()
    metrics = learner.update([ppo_fragment(learner)])
    # 16 rows in minibatches of 4, three times over.
    assert learner.num_updates == 12 and metrics["num_module_steps_trained"] == 48
    assert not all(np.array_equal(before[k], v) for k, v in learner.get_weights().items())


def test_grad_clip_bounds_the_step_and_reports_the_unclipped_norm() -> None:
    cfg = PPOConfig().training(lr=0.0, train_batch_size=16, minibatch_size=16, num_epochs=1, grad_clip=1e-3)
    learner = PPOLearner(cfg, RLModuleSpec(PPOTorchRLModule, OBS_SPACE, ACT_SPACE, {"fcnet_hiddens": [8]}))
    metrics = learner.update([ppo_fragment(learner)])
    clipped = torch.norm(torch.stack([p.grad.norm() for p in learner.module.parameters() if p.grad is not None]))
    assert metrics["gradients_default_optimizer_global_norm"] > 1e-2
    assert float(clipped) == pytest.approx(1e-3, rel=1e-3)


def dqn_learner(**training) -> DQNLearner:
    cfg = DQNConfig().training(lr=0.0, td_error_loss_fn="mse", **training)
    torch.manual_seed(1)
    spec = RLModuleSpec(
        DQNTorchRLModule, OBS_SPACE, ACT_SPACE, {"fcnet_hiddens": [8], "head_fcnet_hiddens": [8], "dueling": True}
    )
    learner = DQNLearner(cfg, spec)
    # A target network that disagrees with the online one.
    rng = np.random.default_rng(2)
    learner.target.set_state({k: v + rng.normal(0, 0.5, v.shape) for k, v in learner.module.get_state().items()})
    return learner


def dqn_batch(n: int = 32) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(3)
    return {
        Columns.OBS: rng.uniform(-1, 1, (n, 4)).astype(np.float32),
        Columns.NEXT_OBS: rng.uniform(-1, 1, (n, 4)).astype(np.float32),
        Columns.ACTIONS: rng.integers(0, 3, n),
        Columns.REWARDS: rng.normal(size=n).astype(np.float32),
        Columns.TERMINATEDS: rng.random(n) < 0.25,
        Columns.DISCOUNTS: rng.choice([0.99, 0.99**2, 0.99**3], n).astype(np.float32),
        Columns.WEIGHTS: rng.uniform(0.2, 1.0, n).astype(np.float32),
    }


@pytest.mark.parametrize("double_q", [True, False])
def test_dqn_td_target_uses_the_target_network_and_double_q(double_q: bool) -> None:
    learner = dqn_learner(double_q=double_q)
    b = dqn_batch()
    t = {k: torch.from_numpy(np.asarray(v)) for k, v in b.items()}
    with torch.no_grad():
        q = learner.module.q_values(t[Columns.OBS]).gather(-1, t[Columns.ACTIONS][:, None])[:, 0]
        q_next_online = learner.module.q_values(t[Columns.NEXT_OBS])
        q_next_target = learner.target.q_values(t[Columns.NEXT_OBS])
    online_pick = q_next_online.argmax(-1)
    assert (online_pick != q_next_target.argmax(-1)).any(), "the batch must tell double Q from plain max"
    # Double Q: the online net picks the next action, the target net values it.
    q_next = q_next_target.gather(-1, online_pick[:, None])[:, 0] if double_q else q_next_target.max(-1).values
    not_done = 1.0 - t[Columns.TERMINATEDS].float()
    target = t[Columns.REWARDS] + t[Columns.DISCOUNTS] * not_done * q_next
    td = (q - target).numpy()

    metrics = learner.update(b)
    assert np.allclose(metrics["td_error"], td, atol=1e-5)
    # mse loss, weighted by the importance weights of prioritized replay.
    assert metrics["qf_loss"] == pytest.approx(float((t[Columns.WEIGHTS] * 0.5 * torch.from_numpy(td) ** 2).mean()))


def test_dqn_target_update_hard_and_soft() -> None:
    hard = dqn_learner()
    assert hard.update_target() == 1
    online = hard.module.get_state()
    assert all(np.array_equal(v, online[k]) for k, v in hard.target.get_state().items())
    soft = dqn_learner(tau=0.25)
    before = soft.target.get_state()
    online = soft.module.get_state()
    soft.update_target()
    after = soft.target.get_state()
    assert all(np.allclose(after[k], 0.75 * before[k] + 0.25 * online[k], atol=1e-6) for k in after)


def test_dueling_q_values_average_to_the_state_value() -> None:
    module = dqn_learner().module
    obs = torch.from_numpy(dqn_batch()[Columns.OBS])
    with torch.no_grad():
        q = module.q_values(obs)
        value = module.vf(module.encoder(obs))[:, 0]
    assert torch.allclose(q.mean(-1), value, atol=1e-5)
