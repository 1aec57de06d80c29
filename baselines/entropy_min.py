"""Entropy minimisation (beyond the paper; in the spirit of RENT / EM-RL): reward = -trajectory entropy.

Shows the drop-in path: a new reward part and a method built from it, in one file.
"""
import numpy as np

from mgrpo.core import GroupContext, Method, register_method, register_reward


@register_reward("neg_entropy")
def neg_entropy_reward(ctx: GroupContext) -> np.ndarray:
    if ctx.entropies is None:
        raise ValueError("reward 'neg_entropy' needs the trajectories' entropies")
    return -np.asarray(ctx.entropies, dtype=np.float64)


register_method(
    Method("entropy_min", reward="neg_entropy", description="entropy minimisation: reward = -mean token entropy"),
    origin=__file__,
)
