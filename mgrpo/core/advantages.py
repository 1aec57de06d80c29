"""GRPO's group-relative advantage."""
from __future__ import annotations

import numpy as np
import torch


def group_advantages(rewards, eps: float = 1e-6):
    """``(r - mean(r)) / (std(r) + eps)`` with the unbiased std, over one prompt's group.

    A group of one gets 0 (its std is undefined; stock verl's GRPO would give r / (1 + eps), the raw reward, which is
    no group-relative signal: both backends use this function); a group of equal rewards gets 0s. A torch tensor in gives a
    tensor out, anything else a float numpy array.
    """
    if isinstance(rewards, torch.Tensor):
        r = rewards.to(torch.float64) if not rewards.is_floating_point() else rewards
        if r.numel() < 2:
            return torch.zeros_like(r)
        return (r - r.mean()) / (r.std(unbiased=True) + eps)
    r = np.asarray(rewards, dtype=np.float64)
    if r.size < 2:
        return np.zeros_like(r)
    return (r - r.mean()) / (r.std(ddof=1) + eps)
