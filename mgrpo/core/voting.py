"""Majority voting over extracted answers: the pseudo-label of SRT / TTRL / M-GRPO."""
from __future__ import annotations

from typing import Callable, Optional, Sequence

Same = Callable[[str, str], bool]


def same_after_stripping(a: str, b: str) -> bool:
    """Default answer equivalence: equal once all white space is removed."""
    return "".join(a.split()) == "".join(b.split())


def majority_vote(answers: Sequence[Optional[str]], same: Optional[Same] = None) -> tuple[Optional[str], int]:
    """Return ``(label, votes)``: the most frequent answer and how many answers agree with it.

    ``None`` (no extractable answer) never votes. ``same(a, b)`` decides equivalence; an answer joins the first
    class whose representative (its first member) it equals. A tie goes to the class that appears first.
    No answer at all gives ``(None, 0)``.
    """
    same = same or same_after_stripping
    representatives: list[str] = []
    counts: list[int] = []
    for answer in answers:
        if answer is None:
            continue
        for i, rep in enumerate(representatives):
            if same(answer, rep):
                counts[i] += 1
                break
        else:
            representatives.append(answer)
            counts.append(1)
    if not counts:
        return None, 0
    best = max(range(len(counts)), key=lambda i: (counts[i], -i))  # ties -> earliest class
    return representatives[best], counts[best]
