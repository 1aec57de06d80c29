"""The GRPO/PPO clipped objective with optional KL to the initial policy, token-mean aggregated."""
from __future__ import annotations

import torch


def low_var_kl(logp: torch.Tensor, ref_logp: torch.Tensor) -> torch.Tensor:
    """Per-token k3 estimator of KL(pi || pi_ref): exp(ref - logp) - (ref - logp) - 1 (>= 0), clamped like verl."""
    log_ratio = (ref_logp - logp).clamp(-20.0, 20.0)
    return (torch.exp(log_ratio) - log_ratio - 1.0).clamp(-10.0, 10.0)


def policy_loss(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    clip: float = 0.2,
    ref_logp: torch.Tensor | None = None,
    kl_coef: float = 0.0,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Clipped surrogate ``-min(rho A, clip(rho, 1-clip, 1+clip) A)`` averaged over all masked tokens of the batch.

    logp, old_logp, mask: [B, T]; advantages: [B] (one per trajectory) or [B, T]. Rows whose mask is all 0 (momentum
    or filtered rollouts) contribute nothing. Returns the loss and detached statistics.
    """
    mask = mask.to(logp.dtype)
    if advantages.dim() == 1:
        advantages = advantages[:, None].expand_as(logp)
    advantages = advantages.to(logp.dtype)
    n_tokens = mask.sum().clamp(min=1.0)
    ratio = torch.exp((logp - old_logp).clamp(-20.0, 20.0))
    unclipped = ratio * advantages
    clipped = ratio.clamp(1.0 - clip, 1.0 + clip) * advantages
    pg = -torch.minimum(unclipped, clipped)
    pg_loss = (pg * mask).sum() / n_tokens
    loss = pg_loss
    stats = {
        "pg_loss": float(pg_loss.detach()),
        # tokens whose loss the clipped branch sets (verl's pg_clipfrac), not every ratio outside the range
        "clip_frac": float(((clipped < unclipped).to(logp.dtype) * mask).sum() / n_tokens),
    }
    if ref_logp is not None:
        kl = (low_var_kl(logp, ref_logp) * mask).sum() / n_tokens
        stats["kl"] = float(kl.detach())
        if kl_coef:
            loss = loss + kl_coef * kl
    return loss, stats
