"""The IQR filter of M-GRPO+IQR: drop trajectories whose entropy is a low outlier within their group."""
from __future__ import annotations

import numpy as np
import torch


def iqr_keep_mask(entropies, k: float = 0.75):
    """Boolean keep-mask: keep iff ``e >= Q1 - k * (Q3 - Q1)``.

    Quartiles use linear interpolation (numpy.quantile's default). Accepts a 1-D numpy array or torch tensor and
    returns the same kind. Low-entropy outliers are the over-confident, collapsing trajectories; high ones are kept.
    When the middle of the group shares one entropy (e.g. 6 of 8 identical responses scored by one model, common
    once a policy collapses), Q1 = Q3 and every rollout below that value is dropped, whatever k: Tukey's fence, as
    the paper defines it.
    """
    if k < 0:
        raise ValueError(f"iqr_k must be >= 0 (got {k})")
    if isinstance(entropies, torch.Tensor):
        if entropies.dim() != 1:
            raise ValueError(f"entropies must be 1-D (got shape {tuple(entropies.shape)})")
        if entropies.numel() == 0:
            return torch.ones(0, dtype=torch.bool, device=entropies.device)
        values = entropies.detach().double()
        if not torch.isfinite(values).all():
            raise ValueError(f"entropies must be finite (got {values.tolist()})")
        q1, q3 = torch.quantile(values, torch.tensor([0.25, 0.75], dtype=values.dtype, device=values.device))
        return values >= q1 - k * (q3 - q1)
    values = np.asarray(entropies, dtype=np.float64)
    if values.ndim != 1:
        raise ValueError(f"entropies must be 1-D (got shape {values.shape})")
    if values.size == 0:
        return np.ones(0, dtype=bool)
    if not np.isfinite(values).all():  # NaN quartiles would drop every rollout
        raise ValueError(f"entropies must be finite (got {values.tolist()})")
    q1, q3 = np.quantile(values, [0.25, 0.75])
    return values >= q1 - k * (q3 - q1)
