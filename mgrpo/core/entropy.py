"""Per-token and per-trajectory entropy and self-certainty from logits already divided by the temperature."""
from __future__ import annotations

import math

import torch


def token_entropy(logits: torch.Tensor) -> torch.Tensor:
    """H(p) per position, natural log: ``logsumexp(z) - sum_j softmax(z)_j z_j``. [..., V] -> [...]."""
    logits = logits.float()
    probs = torch.softmax(logits, dim=-1)
    # 0 * log 0 = 0: a masked-out token (logit -inf) adds nothing rather than NaN
    return torch.logsumexp(logits, dim=-1) - torch.where(probs > 0, probs * logits, 0.0).sum(dim=-1)


def token_self_certainty(logits: torch.Tensor) -> torch.Tensor:
    """KL(U || p) per position: ``-log V - (1/V) sum_j log p_j = logsumexp(z) - mean(z) - log V``."""
    logits = logits.float()
    return torch.logsumexp(logits, dim=-1) - logits.mean(dim=-1) - math.log(logits.shape[-1])


def masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over the last dim where mask is 1; a row with no masked position gives 0."""
    mask = mask.to(values.dtype)
    return (values * mask).sum(dim=-1) / mask.sum(dim=-1).clamp(min=1.0)


def trajectory_entropy(logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean token entropy over each trajectory's response tokens. logits [B, T, V], mask [B, T] -> [B]."""
    return masked_mean(token_entropy(logits), mask)


def self_certainty(logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Intuitor's self-certainty: mean over response tokens of KL(U || p_t). [B, T, V], [B, T] -> [B]."""
    return masked_mean(token_self_certainty(logits), mask)
