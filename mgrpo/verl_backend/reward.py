"""verl reward function (``reward.custom_reward_function``): answer extraction, never a training label.

verl's reward loop calls ``compute_score`` once per rollout. For training rows it returns the extracted,
canonicalised final answer (``mgrpo_answer``) with a score of 0: the pseudo-label needs the whole group, so the
vote is a trainer stage on the driver (stages.py), and the training rows carry no reference answer at all (the
hidden gold lives in a separate column that this function never receives). For validation rows
(``extra_info.split == 'test'``) the score is the answer's correctness against the reference, returned as ``acc``
too: verl's validation counts a prompt whose rollout failed as 0 only in ``acc`` (otherwise it would drop out of
the mean and raise ``val_acc``).
"""
from __future__ import annotations

from typing import Optional

from verl.utils.reward_score.math_reward import last_boxed_only_string, remove_boxed, strip_string

VALIDATION_SPLIT = "test"


def extract_answer(response: str) -> Optional[str]:
    """Content of the last ``\\boxed{}`` (or ``\\fbox{}``) normalised with the MATH normaliser; None if absent."""
    try:
        boxed = last_boxed_only_string(response)
        if boxed is None:
            return None
        if boxed.startswith("\\fbox{"):  # verl's remove_boxed asserts a \boxed prefix
            return canonical(boxed[len("\\fbox{"):-1])
        return canonical(remove_boxed(boxed))
    except (AssertionError, IndexError, ValueError):  # malformed box
        return None


def canonical(answer: str) -> Optional[str]:
    """The MATH normaliser (hendrycks_math's strip_string), so equal answers vote together."""
    try:
        text = strip_string(str(answer))
    except Exception:  # strip_string raises on some malformed LaTeX; fall back to plain white-space stripping
        text = str(answer).strip()
    return text or None


def compute_score(data_source, solution_str, ground_truth, extra_info=None, **kwargs) -> dict:
    answer = extract_answer(solution_str)
    if (extra_info or {}).get("split") != VALIDATION_SPLIT:
        return {"score": 0.0, "mgrpo_answer": answer or ""}
    gold = canonical(ground_truth) if ground_truth else None
    score = float(answer is not None and gold is not None and "".join(answer.split()) == "".join(gold.split()))
    return {"score": score, "acc": score, "mgrpo_answer": answer or ""}
