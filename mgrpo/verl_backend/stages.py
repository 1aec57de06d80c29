"""The method's stage of a verl training step, as pure functions over a batch (verl ``DataProto``).

Rows of one prompt share a ``uid`` (verl's GRPO grouping key). Each row carries the answer extracted by our
reward function (``mgrpo_answer``; None: no answer), whether the momentum model wrote it (``mgrpo_is_momentum``),
its index among that model's rollouts of the prompt (``mgrpo_rollout_index``, verl's session id), the hidden gold
answer (``mgrpo_gold``, read only for the pseudo-label diagnostic) and the actor's per-token
statistic computed with the old log-probs (verl's ``entropy`` field: the token entropy, or, for a
self-certainty reward, ``logsumexp(z) - mean(z)``; z = logits / T, T = the training temperature).

Per prompt, ``mgrpo.core.score_group`` (the same function the CPU trainer calls) filters, votes over all G,
rewards and computes advantages; this module only regroups rows, calls it, and writes the result back as
token-level advantages plus a response mask that is zero on every row outside the loss (momentum rollouts and
rows dropped by the filter), so those rows carry no gradient.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Optional, Sequence

import numpy as np
import torch

from mgrpo import core as mcore

ANSWER = "mgrpo_answer"
IS_MOMENTUM = "mgrpo_is_momentum"
ROLLOUT_INDEX = "mgrpo_rollout_index"
GOLD = "mgrpo_gold"
MOMENTUM_UID_SUFFIX = "-momentum"


def group_uid(uid: str) -> str:
    """The prompt group of a row: momentum rows were generated under ``<uid>-momentum``."""
    uid = str(uid)
    return uid[: -len(MOMENTUM_UID_SUFFIX)] if uid.endswith(MOMENTUM_UID_SUFFIX) else uid


def group_rows(uids: Sequence[str], is_momentum: Optional[Sequence[bool]] = None,
               rollout_index: Optional[Sequence[int]] = None) -> dict[str, list[int]]:
    """Row indices per prompt group, groups in order of first appearance.

    Within a group, rows are put in the CPU trainer's order where the rollout indices are given: the policy's
    rollouts, then the momentum's, each by index; else they stay in batch order. The order decides a tied vote
    (the answer met first wins), and verl reorders a batch's rows by length to balance them over GPUs, so without
    it a tie would be broken by response lengths and the GPU count."""
    groups: dict[str, list[int]] = {}
    for row, uid in enumerate(uids):
        groups.setdefault(group_uid(uid), []).append(row)
    if rollout_index is not None:
        momentum = [False] * len(uids) if is_momentum is None else is_momentum
        for rows in groups.values():
            rows.sort(key=lambda r: (bool(momentum[r]), int(rollout_index[r])))
    return groups


VOTE_REWARDS = ("agreement", "frequency")  # the core rewards that read the group's majority vote


def configure_method(method: mcore.Method, vote_threshold: Optional[float] = None,
                     soft_reward: bool = False, keep_fraction: float = 1.0) -> mcore.Method:
    """The original SRT reward manager's options on top of a registered method (off by default). Each reads the
    majority vote, so each is refused for a method whose reward does not (it would change nothing, or rank
    prompts by a vote the reward never sees)."""
    if keep_fraction != 1.0 and method.reward not in VOTE_REWARDS:
        raise ValueError(f"setting 'keep_fraction' keeps the prompts with the most self-consistent majority vote, "
                         f"which only the {' and '.join(VOTE_REWARDS)} rewards read; method {method.name!r} uses "
                         f"{method.reward!r}")
    if vote_threshold is not None:
        if not 0.0 <= float(vote_threshold) <= 1.0:
            raise ValueError(f"setting 'vote_threshold' must be in [0, 1] (got {vote_threshold!r})")
        if method.reward not in VOTE_REWARDS:
            raise ValueError(f"setting 'vote_threshold' withholds the majority vote's label, which only the "
                             f"{' and '.join(VOTE_REWARDS)} rewards read; method {method.name!r} uses "
                             f"{method.reward!r}")
        method = replace(method, vote_threshold=float(vote_threshold))
    if soft_reward:
        if method.reward != "agreement":
            raise ValueError(f"setting 'soft_reward' replaces the agreement reward; method {method.name!r} "
                             f"uses {method.reward!r}")
        method = replace(method, reward="frequency")
    return method


@dataclass(frozen=True)
class BatchScore:
    """``score_group``'s outputs scattered back to batch rows, plus the groups themselves."""
    advantages: np.ndarray  # [B] per-row advantage (0 outside the loss)
    rewards: np.ndarray  # [B]
    in_loss: np.ndarray  # [B] bool
    kept: np.ndarray  # [B] bool: survived the entropy filter
    agreement: np.ndarray  # [B]
    groups: tuple  # ((group uid, rows, GroupScore), ...)
    kept_prompts: tuple  # group uids left in the loss by keep_fraction


def keep_most_consistent(shares: Sequence[tuple[str, Optional[float]]], keep_fraction: float) -> set[str]:
    """The original SRT reward manager's ``oversampling_keep_fraction``.

    ``shares``: (prompt, majority share = votes / answers that voted; None for a prompt without a label).
    Keeps the ``max(1, floor(keep_fraction * P))`` labelled prompts with the highest share (ties: the smaller uid,
    an arbitrary choice that does not depend on the batch's row order); unlabelled prompts are never kept (the
    original ranks only labelled ones). 1.0 keeps every prompt.
    """
    if not 0.0 < keep_fraction <= 1.0:
        raise ValueError(f"setting 'keep_fraction' must be in (0, 1] (got {keep_fraction!r})")
    if keep_fraction == 1.0:
        return {uid for uid, _ in shares}
    n_keep = max(1, int(keep_fraction * len(shares)))
    ranked = sorted((-share, uid) for uid, share in shares if share is not None)
    return {uid for _, uid in ranked[:n_keep]}


def score_batch(method: mcore.Method, uids: Sequence[str], answers: Sequence[Optional[str]],
                is_momentum: Sequence[bool], entropies: Optional[Sequence[float]] = None,
                self_certainties: Optional[Sequence[float]] = None, golds: Optional[Sequence] = None,
                k: float = 0.75, keep_fraction: float = 1.0, momentum_in_loss: bool = False,
                rollout_index: Optional[Sequence[int]] = None) -> BatchScore:
    """``score_group`` for every prompt of a batch; rows may come in any order (with ``rollout_index``, the
    result does not depend on it: see ``group_rows``).

    ``momentum_in_loss`` reproduces the released code's intent (momentum rollouts trained like policy ones);
    the paper keeps them out of the loss.
    """
    B = len(uids)
    for name, values in (("answers", answers), ("is_momentum", is_momentum), ("entropies", entropies),
                         ("self_certainties", self_certainties), ("golds", golds), ("rollout_index", rollout_index)):
        if values is not None and len(values) != B:
            raise ValueError(f"{name} has {len(values)} rows for a batch of {B}")
    is_momentum = np.asarray(is_momentum, dtype=bool)
    advantages, rewards = np.zeros(B), np.zeros(B)
    in_loss, kept, agreement = np.zeros(B, dtype=bool), np.zeros(B, dtype=bool), np.zeros(B)
    groups, shares = [], []
    for uid, rows in group_rows(uids, is_momentum, rollout_index).items():
        gold_values = {None if golds is None else _none_if_empty(golds[r]) for r in rows}
        if len(gold_values) > 1:
            raise ValueError(f"prompt group {uid!r} has rows with different gold answers")
        score = mcore.score_group(
            method,
            [answers[r] for r in rows],
            is_momentum=[False if momentum_in_loss else bool(is_momentum[r]) for r in rows],
            entropies=None if entropies is None else [float(entropies[r]) for r in rows],
            self_certainties=None if self_certainties is None else [float(self_certainties[r]) for r in rows],
            gold=gold_values.pop(), k=k,
        )
        groups.append((uid, rows, score))
        shares.append((uid, score.votes / score.n_voters if score.label is not None and score.n_voters else None))
    keep = keep_most_consistent(shares, keep_fraction)
    for uid, rows, score in groups:
        if uid not in keep:
            continue
        idx = np.asarray(rows)
        advantages[idx] = score.advantages
        rewards[idx] = score.rewards
        in_loss[idx] = score.in_loss
    for _uid, rows, score in groups:
        kept[np.asarray(rows)] = score.kept
        agreement[np.asarray(rows)] = score.agreement
    return BatchScore(advantages, rewards, in_loss, kept, agreement, tuple(groups),
                      tuple(uid for uid, _, _ in groups if uid in keep))


def _none_if_empty(value):
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    value = str(value)
    return value if value else None


def trajectory_means(token_values: torch.Tensor, response_mask: torch.Tensor) -> np.ndarray:
    """Per-row mean of a token-level statistic over the response tokens ([B, T] -> [B])."""
    return mcore.masked_mean(token_values.float(), response_mask.float()).double().cpu().numpy()


def score_dataproto(data, method: mcore.Method, k: float = 0.75, keep_fraction: float = 1.0,
                    momentum_in_loss: bool = False, token_statistic: str = "entropy",
                    vocab_size: Optional[int] = None):
    """Apply the method's stage to a verl ``DataProto``; returns ``(data, BatchScore)``.

    Reads ``batch['response_mask']`` and ``batch['entropy']`` ([B, T], from the old-log-prob pass) and the
    non-tensor fields ``uid``, ``mgrpo_answer``, ``mgrpo_is_momentum``, ``mgrpo_rollout_index`` and
    ``mgrpo_gold`` (the last two optional). Writes
    ``advantages`` and ``returns`` (the row's advantage on each response token) and zeroes ``response_mask``
    and ``loss_mask`` on rows outside the loss. ``token_statistic='self_certainty'`` means the ``entropy`` field
    holds ``logsumexp(z) - mean(z)`` per token (see workers.py): the trajectory mean minus log V is Intuitor's
    self-certainty and no entropy is available (a method that filters on entropy then fails).
    """
    if token_statistic not in ("entropy", "self_certainty"):
        raise ValueError(f"token_statistic must be 'entropy' or 'self_certainty' (got {token_statistic!r})")
    batch, extra = data.batch, data.non_tensor_batch
    for key in ("uid", ANSWER, IS_MOMENTUM):
        if key not in extra:
            raise KeyError(f"batch has no non-tensor field {key!r}")
    response_mask = batch["response_mask"]
    per_row = trajectory_means(batch["entropy"], response_mask)
    entropies = self_certainties = None
    if token_statistic == "entropy":
        entropies = per_row
    else:
        if vocab_size is None:
            raise ValueError("token_statistic 'self_certainty' needs vocab_size (log V is subtracted)")
        if method.entropy_filter:
            raise ValueError(f"method {method.name!r} needs both entropy and self-certainty; the verl backend "
                             "computes one token statistic per old-log-prob pass")
        self_certainties = per_row - math.log(vocab_size)
    answers = [_none_if_empty(a) for a in extra[ANSWER]]
    scores = score_batch(method, [str(u) for u in extra["uid"]], answers, extra[IS_MOMENTUM].astype(bool),
                         entropies=entropies, self_certainties=self_certainties,
                         golds=list(extra[GOLD]) if GOLD in extra else None, k=k, keep_fraction=keep_fraction,
                         momentum_in_loss=momentum_in_loss,
                         rollout_index=list(extra[ROLLOUT_INDEX]) if ROLLOUT_INDEX in extra else None)
    loss_rows = torch.as_tensor(scores.in_loss, device=response_mask.device)
    new_mask = response_mask * loss_rows[:, None].to(response_mask.dtype)
    advantages = torch.as_tensor(scores.advantages, dtype=torch.float32, device=response_mask.device)
    token_advantages = advantages[:, None] * new_mask.to(torch.float32)
    batch["advantages"] = token_advantages
    batch["returns"] = token_advantages.clone()
    batch["response_mask"] = new_mask
    batch["loss_mask"] = new_mask.clone()
    return data, scores


def step_metrics(scores: BatchScore, is_momentum: Sequence[bool], entropies: Optional[Sequence[float]]) -> dict:
    """The method columns of metrics.jsonl (docs/architecture.md), from one step's scored batch: the core's, over
    the rows verl trained on (keep_fraction may leave a prompt out), and the policy rows' entropy."""
    is_momentum = np.asarray(is_momentum, dtype=bool)
    groups = [(score, is_momentum[rows], scores.in_loss[rows]) for _, rows, score in scores.groups]
    entropy = None if entropies is None else _mean(np.asarray(entropies, dtype=np.float64)[~is_momentum])
    return {**mcore.step_metrics(groups), "entropy": entropy}


def rollout_logprob_gaps(rollout_log_probs: torch.Tensor, actor_log_probs: torch.Tensor,
                         response_mask: torch.Tensor, is_momentum: Sequence[bool]) -> dict:
    """The rollout engine's log-probs of the tokens it sampled against the actor's (old-log-prob pass, same T).

    ``policy_rollout_mismatch``: mean |rollout - actor| over the policy rows' response tokens, where both engines hold
    the policy's weights (numerical mismatch; grows if the policy's weights were not restored after the momentum
    push). ``momentum_kl_to_policy``: mean (rollout - actor) over the momentum rows' tokens, which the engine sampled
    with the EMA weights: the Monte Carlo estimate of KL(EMA || policy) per token on the EMA's own samples (about 0
    if the push left the policy's weights in the engine). None where the batch has no such rows. All tensors [B, T]."""
    is_momentum = torch.as_tensor(np.asarray(is_momentum, dtype=bool), device=response_mask.device)
    gap = rollout_log_probs.double() - actor_log_probs.double()
    mask = response_mask.bool()

    def mean(values: torch.Tensor, rows: torch.Tensor) -> Optional[float]:
        picked = values[mask & rows[:, None]]
        return float(picked.mean()) if picked.numel() else None

    return {"policy_rollout_mismatch": mean(gap.abs(), ~is_momentum),
            "momentum_kl_to_policy": mean(gap, is_momentum)}


def _mean(values) -> Optional[float]:
    values = np.asarray(list(values) if not isinstance(values, np.ndarray) else values, dtype=np.float64)
    return float(values.mean()) if values.size else None
