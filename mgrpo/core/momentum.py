"""The momentum (EMA) model: its update theta_k <- m * theta_k + (1 - m) * theta_q, and its weights lent to the
policy's parameter storage while the momentum model writes its rollouts (one model in memory, one rollout engine)."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterable, Iterator, Sequence

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


@contextmanager
def ema_loaded(get_params: Callable[[], Sequence[torch.Tensor]], ema_params: Sequence[torch.Tensor]) -> Iterator[None]:
    """The EMA in the policy's parameter tensors for the duration of the block, the policy restored after (also when
    the block fails). ``get_params`` is called again for the restore: the block may move the parameters (offloading
    them gives them new storage), and the policy must go back where they are then."""
    params = list(get_params())
    if len(params) != len(ema_params):
        raise ValueError(f"ema_loaded: {len(ema_params)} EMA tensors but {len(params)} policy tensors")
    with torch.no_grad():
        backup = [p.detach().clone() for p in params]
        for p, e in zip(params, ema_params):
            p.copy_(e.to(device=p.device, dtype=p.dtype))
    try:
        yield
    finally:
        with torch.no_grad():
            for p, saved in zip(get_params(), backup):
                p.copy_(saved.to(p.device))
        del backup
