"""Multiple-choice grading (GPQA, MMLU-Pro): the chosen letter of a response, compared with the gold letter.

The prompt asks for the letter inside ``\\boxed{}``; the letter is read from the last box first
(``\\boxed{C}``, ``\\boxed{(C)}``, ``\\boxed{\\text{C}}``, ``\\boxed{C) 42}``), then from an
"answer is (C)" / "Answer: C" phrase. A response naming no letter among the options is wrong.
"""
from __future__ import annotations

import re
import string

from mgrpo.evaluation.math_grading import last_boxed

LETTERS = string.ascii_uppercase[:10]  # MMLU-Pro has up to 10 options

_TEXT_WRAPPER = re.compile(r"\\(?:text|textbf|mathrm|mathbf)\s*\{([^{}]*)\}")
# The letter itself is case-sensitive: "the answer is a prime" names no option.
_ANSWER_PHRASE = re.compile(r"(?i:answer)\s*(?:(?i:is)|:)?\s*[:\s]*\(?\s*\**\s*([A-J])\b")


def _letter_in(text: str, letters: str) -> str | None:
    text = _TEXT_WRAPPER.sub(r"\1", text).strip()
    match = re.match(r"^[\s(\[*]*([A-Za-z])(?![A-Za-z])", text)
    if match and match.group(1).upper() in letters:
        return match.group(1).upper()
    return None


def extract_choice(response: str, n_options: int = 4) -> str | None:
    """The option letter a response chose (``A``.. up to ``n_options``), or None."""
    letters = LETTERS[:n_options]
    boxed = last_boxed(response)
    if boxed is not None:
        return _letter_in(boxed, letters)
    for match in reversed(list(_ANSWER_PHRASE.finditer(response))):
        letter = match.group(1).upper()
        if letter in letters:
            return letter
    return None


def score_choice(response: str, gold_letter: str, n_options: int) -> tuple[str | None, bool]:
    """(chosen letter, correct) for one response."""
    chosen = extract_choice(response, n_options)
    return chosen, chosen is not None and chosen == gold_letter.strip().upper()
