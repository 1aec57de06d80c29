"""The algorithm: pure functions shared by every backend. Imports neither verl nor transformers."""
from .advantages import group_advantages
from .entropy import masked_mean, self_certainty, token_entropy, token_self_certainty, trajectory_entropy
from .filtering import iqr_keep_mask
from .loss import low_var_kl, policy_loss
from .methods import (
    GroupContext,
    GroupScore,
    Method,
    UnknownMethodError,
    default_momentum_rollouts,
    get_method,
    known_methods,
    known_rewards,
    load_baselines,
    register_method,
    register_reward,
    reward_statistic,
    score_group,
    validate_hyperparameters,
)
from .metrics import step_metrics
from .momentum import ema_loaded, ema_update_
from .voting import majority_vote, same_after_stripping

__all__ = [
    "GroupContext", "GroupScore", "Method", "UnknownMethodError", "default_momentum_rollouts", "ema_loaded",
    "ema_update_", "get_method", "group_advantages", "iqr_keep_mask", "known_methods", "known_rewards",
    "load_baselines", "low_var_kl", "majority_vote", "masked_mean", "policy_loss", "register_method", "register_reward",
    "reward_statistic", "same_after_stripping", "score_group", "self_certainty", "step_metrics", "token_entropy",
    "token_self_certainty", "trajectory_entropy", "validate_hyperparameters",
]
