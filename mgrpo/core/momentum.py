"""The momentum (EMA) model's update: theta_k <- m * theta_k + (1 - m) * theta_q."""
from __future__ import annotations

from typing import Iterable

import torch


@torch.no_grad()
def ema_update_(ema_params: Iterable[torch.Tensor], params: Iterable[torch.Tensor], m: float) -> None:
    """In place over matching iterables of tensors. m = 1 freezes the EMA, m = 0 copies the policy."""
    if not 0.0 <= m <= 1.0:
        raise ValueError(f"momentum m must be in [0, 1] (got {m})")
    ema_params, params = list(ema_params), list(params)
    if len(ema_params) != len(params):
        raise ValueError(f"ema_update_: {len(ema_params)} EMA tensors but {len(params)} policy tensors")
    if not ema_params:
        return
    # lerp(start, end, w) = start + w * (end - start) and returns `end` exactly when w = 1.
    sources = [p.to(e.dtype) for e, p in zip(ema_params, params)]
    torch._foreach_lerp_(ema_params, sources, 1.0 - m)
