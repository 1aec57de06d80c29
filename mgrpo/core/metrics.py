"""The method columns of a step's metrics.jsonl line (docs/architecture.md), from its scored groups: one definition
for both backends, so that analysis compares the same quantities whichever trained a run."""
from __future__ import annotations

from typing import Iterable, Optional, Sequence

import numpy as np

from .methods import GroupScore


def _mean(values: Iterable[float]) -> Optional[float]:
    values = [float(v) for v in values]
    return float(np.mean(values)) if values else None


def step_metrics(groups: Sequence[tuple[GroupScore, Sequence[bool], Sequence[bool]]]) -> dict:
    """``groups``: per prompt, (its score, is_momentum [G], in_loss [G]); in_loss is what the backend trained on
    (the score's own, or fewer where verl's keep_fraction left the prompt out). Null where nothing was counted."""
    flat = [(score, np.asarray(is_momentum, dtype=bool), np.asarray(in_loss, dtype=bool))
            for score, is_momentum, in_loss in groups]
    labelled = [(score, momentum) for score, momentum, _ in flat if score.correct is not None]  # hidden gold known
    momentum_rows = [a for score, momentum, _ in flat for a in score.agreement[momentum]]
    return {
        "reward": _mean(r for score, _, in_loss in flat for r in score.rewards[in_loss]),
        "agreement": _mean(a for score, momentum, _ in flat for a in score.agreement[~momentum]),
        "filtered_frac": _mean(1.0 - kept for score, _, _ in flat for kept in score.kept),
        # did the filter drop right or wrong answers (null when it dropped none)
        "filtered_acc": _mean(c for score, _ in labelled for c in score.correct[~score.kept]),
        # prompts whose vote gave a label (none: no voter answered, or vote_threshold withheld it); the original SRT
        # code's fraction_labeled_via_self_consistency
        "labelled_frac": _mean(float(score.label is not None) for score, _, _ in flat),
        # over the prompts that have a (hidden) label; null for unlabelled training data
        "pseudo_label_acc": _mean(score.label_correct for score, _ in labelled),
        "rollout_acc": _mean(c for score, momentum in labelled for c in score.correct[~momentum]),
        "momentum_agreement": _mean(momentum_rows) if any(momentum.any() for _, momentum, _ in flat) else None,
    }
