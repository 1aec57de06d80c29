"""Methods as compositions of parts, and the one function both backends call per prompt: ``score_group``.

A method = a rollout source (policy only, or policy + momentum model), an optional entropy filter, and a reward.
Methods register by name; drop-in files in ``baselines/`` register more (SRT, Intuitor, ...).
"""
from __future__ import annotations

import importlib.util
import math
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np

from .advantages import group_advantages
from .filtering import iqr_keep_mask
from .voting import Same, majority_vote, same_after_stripping

# ---------------------------------------------------------------------------------------------------------------
# Rewards: a reward part maps one group's context to a reward per rollout.


@dataclass(frozen=True)
class GroupContext:
    answers: tuple[Optional[str], ...]  # every rollout's answer (None: none extracted), filtered ones too
    voted: np.ndarray  # [G] bool: the rollout's answer was in the vote (not dropped by the filter)
    label: Optional[str]  # the vote's pseudo-label (None: no label)
    votes: int  # how many voting answers agree with the label
    n_voters: int  # voting answers that are not None
    agreement: np.ndarray  # [G] 1.0 where the answer equals the label
    entropies: Optional[np.ndarray]
    self_certainties: Optional[np.ndarray]
    gold: Optional[str]  # hidden ground truth: only the ground_truth reference reward may read it
    same: Same


RewardFn = Callable[[GroupContext], np.ndarray]
_REWARDS: dict[str, RewardFn] = {}
_REWARD_STATISTIC: dict[str, str] = {}
TOKEN_STATISTICS = ("entropy", "self_certainty")


def register_reward(name: str, statistic: str = "entropy") -> Callable[[RewardFn], RewardFn]:
    """``statistic``: the trajectory statistic the reward may read from its ``GroupContext``, ``entropy`` (also for a
    reward that reads neither) or ``self_certainty``; the other one is ``None``. The verl backend computes one token
    statistic per old-log-prob pass, and the CPU trainer hands a reward the same one, so the toy shows what verl does."""
    if statistic not in TOKEN_STATISTICS:
        raise ValueError(f"reward {name!r}: statistic must be one of {', '.join(TOKEN_STATISTICS)} (got {statistic!r})")

    def decorator(fn: RewardFn) -> RewardFn:
        if name in _REWARDS and (_REWARDS[name] is not fn or _REWARD_STATISTIC[name] != statistic):
            raise ValueError(f"reward {name!r} is already registered")
        _REWARDS[name], _REWARD_STATISTIC[name] = fn, statistic
        return fn

    return decorator


def known_rewards() -> list[str]:
    return sorted(_REWARDS)


def reward_statistic(name: str) -> str:
    """The trajectory statistic reward ``name`` reads (``register_reward``'s ``statistic``)."""
    return _REWARD_STATISTIC[name]


@register_reward("agreement")
def agreement_reward(ctx: GroupContext) -> np.ndarray:
    """1 if the rollout's answer equals the majority answer, else 0 (SRT / TTRL / M-GRPO)."""
    return ctx.agreement.copy()


@register_reward("frequency")
def frequency_reward(ctx: GroupContext) -> np.ndarray:
    """Soft agreement: the share of voters that gave the rollout's answer (the original SRT code's soft option).
    A group without a label (no voter answered, or ``vote_threshold`` withheld it) gets no reward, as under the
    agreement reward."""
    if ctx.n_voters == 0 or ctx.label is None:
        return np.zeros(len(ctx.answers))
    voters = [b for b, voted in zip(ctx.answers, ctx.voted) if voted and b is not None]
    counts = [0 if a is None else sum(1 for b in voters if ctx.same(a, b)) for a in ctx.answers]
    return np.asarray(counts, dtype=np.float64) / ctx.n_voters


@register_reward("self_certainty", statistic="self_certainty")
def self_certainty_reward(ctx: GroupContext) -> np.ndarray:
    """Intuitor: the rollout's self-certainty, mean_t KL(U || p_t)."""
    if ctx.self_certainties is None:
        raise ValueError("reward 'self_certainty' needs self_certainties for the group")
    return np.asarray(ctx.self_certainties, dtype=np.float64).copy()


@register_reward("ground_truth")
def ground_truth_reward(ctx: GroupContext) -> np.ndarray:
    """Reference only: 1 if the answer equals the hidden gold answer (supervised RL, an upper bound)."""
    if ctx.gold is None:
        raise ValueError("reward 'ground_truth' needs the gold answer")
    return np.asarray([float(a is not None and ctx.same(a, ctx.gold)) for a in ctx.answers])


# ---------------------------------------------------------------------------------------------------------------
# Methods


@dataclass(frozen=True)
class Method:
    name: str
    reward: str
    momentum: bool = False  # a momentum (EMA) model writes N of the G rollouts; they vote but never enter the loss
    entropy_filter: bool = False  # IQR filter on trajectory entropy before voting
    vote_threshold: float = 0.0  # a group whose majority share is below this gets no label (SRT option)
    description: str = ""
    # What a rollout the filter drops leaves: the paper's "vote_and_loss"; "vote" (it still enters the loss, rewarded
    # against the filtered vote) or "loss" (it still votes) are ablations that say which half of the filter acts.
    filter_scope: str = "vote_and_loss"


FILTER_SCOPES = ("vote_and_loss", "vote", "loss")


class UnknownMethodError(KeyError):
    def __str__(self) -> str:  # KeyError would quote the whole message
        return str(self.args[0])


_METHODS: dict[str, Method] = {}
_ORIGIN: dict[str, str] = {}
_plugins_loaded = False
_loading: str = ""  # the baseline file being imported: the origin of what it registers without naming one


def register_method(method: Method, origin: str = "") -> Method:
    if method.reward not in _REWARDS:
        raise ValueError(
            f"method {method.name!r}: unknown reward {method.reward!r}; known rewards: {', '.join(known_rewards())}"
        )
    if method.name in _METHODS and _METHODS[method.name] != method:
        raise ValueError(f"method {method.name!r} is registered twice ({_ORIGIN[method.name]} and "
                         f"{origin or _loading or '?'})")
    if not 0.0 <= method.vote_threshold <= 1.0:
        raise ValueError(f"method {method.name!r}: vote_threshold must be in [0, 1] (got {method.vote_threshold})")
    if method.filter_scope not in FILTER_SCOPES:
        raise ValueError(f"method {method.name!r}: unknown filter_scope {method.filter_scope!r}; "
                         f"known: {', '.join(FILTER_SCOPES)}")
    if method.filter_scope != "vote_and_loss" and not method.entropy_filter:
        raise ValueError(f"method {method.name!r}: filter_scope {method.filter_scope!r} needs entropy_filter=True")
    if method.entropy_filter and reward_statistic(method.reward) != "entropy":
        raise ValueError(f"method {method.name!r}: the IQR filter reads entropies, its reward {method.reward!r} reads "
                         f"{reward_statistic(method.reward)}: a rollout has one statistic (the verl backend computes "
                         "one per old-log-prob pass)")
    _METHODS[method.name] = method
    _ORIGIN[method.name] = origin or _loading or "mgrpo.core.methods"
    return method


def baselines_dir() -> Path:
    """``$MGRPO_BASELINES_DIR`` or the repository's ``baselines/`` folder."""
    env = os.environ.get("MGRPO_BASELINES_DIR")
    if env and not Path(env).is_dir():  # else every baseline would be "unknown", with no word of why
        raise FileNotFoundError(f"MGRPO_BASELINES_DIR={env} is not a directory")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "baselines"


def load_baselines(directory: Path | None = None) -> list[str]:
    """Import every ``*.py`` in the baselines folder (alphabetically); each registers its methods."""
    global _loading
    directory = Path(directory) if directory is not None else baselines_dir()
    loaded = []
    for path in sorted(directory.glob("*.py")) if directory.is_dir() else []:
        if path.name.startswith("_"):
            continue
        module_name = f"mgrpo_baselines.{path.stem}"
        if module_name in sys.modules:
            loaded.append(path.stem)
            continue
        spec = importlib.util.spec_from_file_location(module_name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        _loading = str(path)
        try:
            spec.loader.exec_module(module)
        except Exception:
            del sys.modules[module_name]
            raise
        finally:
            _loading = ""
        loaded.append(path.stem)
    return loaded


def _ensure_plugins() -> None:
    global _plugins_loaded
    if not _plugins_loaded:
        _plugins_loaded = True  # first: a baseline file registering its method must not load the folder again
        try:
            load_baselines()
        except BaseException:
            _plugins_loaded = False  # a later call raises again instead of answering from a partial registry
            raise


def known_methods() -> list[str]:
    _ensure_plugins()
    return sorted(_METHODS)


def get_method(name: str) -> Method:
    _ensure_plugins()
    if name not in _METHODS:
        raise UnknownMethodError(f"unknown method {name!r}; registered methods: {', '.join(sorted(_METHODS))}")
    return _METHODS[name]


register_method(
    Method("mgrpo", reward="agreement", momentum=True,
           description="M-GRPO: policy + momentum rollouts vote, agreement reward on policy rollouts")
)
register_method(
    Method("mgrpo_iqr", reward="agreement", momentum=True, entropy_filter=True,
           description="M-GRPO with the IQR filter on trajectory entropy before voting")
)

# ---------------------------------------------------------------------------------------------------------------
# Hyper-parameters


def default_momentum_rollouts(method: Method, G: int) -> int:
    """The paper's N = G / 4 for momentum methods (at least 1), 0 otherwise."""
    return max(1, G // 4) if method.momentum else 0


def validate_hyperparameters(method: Method, G: int, N: int, m: float, k: float,
                             momentum_in_loss: bool = False) -> None:
    """Fail before training, naming the parameter. ``momentum_in_loss``: the momentum rows get advantages too
    (the verl backend's option), so only the group as a whole needs two rollouts."""
    if not isinstance(G, int) or G < 2:
        raise ValueError(f"G (rollouts per prompt) must be an integer >= 2 (got {G!r})")
    if method.momentum:
        if N < 1:
            raise ValueError(f"N (momentum rollouts) must be >= 1 for method {method.name!r} (got {N})")
        if momentum_in_loss and N >= G:
            raise ValueError(f"N (momentum rollouts) must be < G = {G} for method {method.name!r} (got {N})")
        if not momentum_in_loss and G - N < 2:  # one policy rollout has advantage 0: it would train on nothing
            raise ValueError(f"N (momentum rollouts) must be <= G - 2 = {G - 2} for method {method.name!r} (got {N}): "
                             "group-normalised advantages need at least 2 policy rollouts per prompt")
    elif N != 0:
        raise ValueError(f"N (momentum rollouts) must be 0 for method {method.name!r}, which has no momentum model")
    if not 0.0 <= m <= 1.0:
        raise ValueError(f"momentum m must be in [0, 1] (got {m})")
    if not (k >= 0 and math.isfinite(k)):  # NaN would drop every rollout: a run that trains on nothing
        raise ValueError(f"iqr_k must be a finite number >= 0 (got {k})")


# ---------------------------------------------------------------------------------------------------------------
# The per-prompt stage


@dataclass(frozen=True)
class GroupScore:
    label: Optional[str]
    votes: int  # voting answers that agree with the label
    n_voters: int  # voting answers that are not None
    kept: np.ndarray  # [G] bool: survived the filter (all True without one)
    in_loss: np.ndarray  # [G] bool: kept policy rollouts, the only ones with a gradient
    rewards: np.ndarray  # [G] reward of in-loss rollouts, 0 elsewhere
    advantages: np.ndarray  # [G] group advantage over in-loss rollouts, 0 elsewhere
    agreement: np.ndarray  # [G] 1.0 where the answer equals the label (diagnostic, every rollout)
    label_correct: Optional[bool]  # label == hidden gold (None when no gold given)
    correct: Optional[np.ndarray] = None  # [G] 1.0 where the answer equals the hidden gold (None when no gold given)


def score_group(
    method: Method,
    answers: Sequence[Optional[str]],
    is_momentum: Sequence[bool] | None = None,
    entropies: Sequence[float] | None = None,
    self_certainties: Sequence[float] | None = None,
    gold: Optional[str] = None,
    same: Optional[Same] = None,
    k: float = 0.75,
) -> GroupScore:
    """Filter, vote, reward and compute advantages for one prompt's G rollouts."""
    same = same or same_after_stripping
    G = len(answers)
    is_momentum = np.zeros(G, dtype=bool) if is_momentum is None else np.asarray(is_momentum, dtype=bool)
    if is_momentum.shape != (G,):
        raise ValueError(f"is_momentum has {is_momentum.size} entries for {G} answers")
    ent = None if entropies is None else np.asarray(entropies, dtype=np.float64)
    sc = None if self_certainties is None else np.asarray(self_certainties, dtype=np.float64)
    for name, values in (("entropies", ent), ("self_certainties", sc)):
        if values is not None and values.shape != (G,):
            raise ValueError(f"{name} has {values.size} entries for {G} answers")
        if values is not None and not np.isfinite(values).all():  # a NaN would silently drop the whole group
            raise ValueError(f"{name} are not all finite: {values.tolist()}")

    if method.entropy_filter:
        if ent is None:
            raise ValueError(f"method {method.name!r} filters on entropy: pass entropies")
        kept = iqr_keep_mask(ent, k)
    else:
        kept = np.ones(G, dtype=bool)

    voters = kept if method.filter_scope != "loss" else np.ones(G, dtype=bool)
    voting = [a if vote else None for a, vote in zip(answers, voters)]
    label, votes = majority_vote(voting, same)
    n_voters = sum(a is not None for a in voting)
    if label is not None and n_voters and votes / n_voters < method.vote_threshold:
        label, votes = None, 0
    agreement = np.asarray([float(label is not None and a is not None and same(a, label)) for a in answers])

    ctx = GroupContext(tuple(answers), voters, label, votes, n_voters, agreement, ent, sc, gold, same)
    rewards = np.asarray(_REWARDS[method.reward](ctx), dtype=np.float64)
    in_loss = (kept if method.filter_scope != "vote" else True) & ~is_momentum
    rewards = np.where(in_loss, rewards, 0.0)
    advantages = np.zeros(G)
    advantages[in_loss] = group_advantages(rewards[in_loss])
    label_correct = None if gold is None else bool(label is not None and same(label, gold))
    correct = None if gold is None else np.asarray([float(a is not None and same(a, gold)) for a in answers])
    return GroupScore(label, votes, n_voters, kept, in_loss, rewards, advantages, agreement, label_correct, correct)
