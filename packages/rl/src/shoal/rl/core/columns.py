"""Names of the columns in sample batches, as RLlib spells them."""

from __future__ import annotations

__all__ = ["DEFAULT_AGENT_ID", "DEFAULT_MODULE_ID", "Columns"]

DEFAULT_MODULE_ID = "default_policy"
DEFAULT_AGENT_ID = "default_agent"


class Columns:
    """Column names shared by env runners, RLModules and learners."""

    OBS = "obs"
    NEXT_OBS = "new_obs"
    ACTIONS = "actions"
    REWARDS = "rewards"
    TERMINATEDS = "terminateds"
    TRUNCATEDS = "truncateds"
    ACTION_DIST_INPUTS = "action_dist_inputs"
    ACTION_LOGP = "action_logp"
    VF_PREDS = "vf_preds"
    # Value of the observation after each step (0 after termination): what GAE bootstraps from.
    NEXT_VF_PREDS = "next_vf_preds"
    ADVANTAGES = "advantages"
    VALUE_TARGETS = "value_targets"
    QF_PREDS = "qf_preds"
    # Discount applied to the bootstrap value of an n-step transition (gamma ** steps).
    DISCOUNTS = "discounts"
    WEIGHTS = "weights"
