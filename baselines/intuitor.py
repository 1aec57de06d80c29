"""Intuitor (RLIF): reward = self-certainty of the rollout, mean over response tokens of KL(U || p_t)."""
from mgrpo.core import Method, register_method

register_method(
    Method("intuitor", reward="self_certainty", description="Intuitor: self-certainty reward, GRPO advantages"),
    origin=__file__,
)
