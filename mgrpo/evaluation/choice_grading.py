"""Multiple-choice grading (GPQA, MMLU-Pro): the chosen letter of a response, compared with the gold letter.

The prompt asks for the letter inside ``\\boxed{}``; the letter is read from the last box first
(``\\boxed{C}``, ``\\boxed{(C)}``, ``\\boxed{\\text{\\textbf{C}}}``, ``\\boxed{C) 42}``,
``\\boxed{\\text{Option C}}``), then, when there is no box or the last box names no letter (``\\boxed{5 eV}``),
from an "answer is (C)" / "Answer: C" / "answer is **(C)**" / "answer is option (C)" phrase, where
"Answer: I think ..." is the pronoun, not option I. A response naming no letter among the options is wrong.
"""
from __future__ import annotations

import re
import string

from mgrpo.evaluation.math_grading import last_boxed

LETTERS = string.ascii_uppercase[:10]  # MMLU-Pro has up to 10 options

_TEXT_WRAPPER = re.compile(r"\\(?:text|textbf|textit|textrm|textsf|texttt|mathrm|mathbf|mathit|mathsf|mathtt|"
                           r"emph|boldsymbol)\s*\{([^{}]*)\}")
# The letter right after the phrase, in any wrapping: "answer is (C)", "Answer: **D**", "answer is **(B)**".
# The letter itself is case-sensitive: "the answer is a prime" names no option.
# Searched in the response with its text wrappers removed (``\\textbf{(C)}`` -> ``(C)``) and a lone letter in math
# mode bracketed (``$D$``, ``$(D)$``, ``\\(B\\)`` -> ``(D)``; not ``$B = 2$``, a quantity named B).
_ANSWER_PHRASE = re.compile(r"(?i:answer)\s*(?:(?i:is)|:)?[\s:*_(\[]*(?:(?i:option|choice)[\s:*_(\[]*)?"
                            r"([A-J])\b(?!\s*[=<>_^])")
_MATH_LETTER = re.compile(r"\$\s*\(?\s*([A-J])\s*\)?\s*\$|\\\(\s*\(?\s*([A-J])\s*\)?\s*\\\)")
# A bare "I" followed by a word is the pronoun ("Answer: I think ..."), not option I of ten.
_PRONOUN_FOLLOWS = re.compile(r"\s+[a-z]")
# After that pronoun, the option is a bracketed or bold letter in the same sentence ("I think it is (C).").
_WRAPPED_LETTER = re.compile(r"[(\[]\s*([A-J])\s*[)\]]|\*\*\s*([A-J])\s*\*\*")
_SENTENCE_END = re.compile(r"\.(?:\s|$)|\n")
# A box's letter, after an optional "Option" / "Choice" ("\\boxed{\\text{Option C}}").
# The word ends there: "Options" / "Choices" name no letter (not "S").
_BOXED_LETTER = re.compile(r"^[\s(\[*]*(?:(?i:option|choice)\b[\s:(\[*]*)?([A-Za-z])(?![A-Za-z])(?!\s*[=<>_^])")


def _unwrap(text: str) -> str:
    """``\\text{\\textbf{C}}`` -> ``C``: strip text/font wrappers, innermost first, until none is left."""
    while (unwrapped := _TEXT_WRAPPER.sub(r"\1", text)) != text:
        text = unwrapped
    return text


def _boxed_letter(text: str) -> str | None:
    """The letter a box's content names (any of A-Z, upper-cased), or None when it names none ("5 eV", "42", or an
    equation or subscript: "B = 0.5 T" and "A_1" name quantities, not options)."""
    match = _BOXED_LETTER.match(_unwrap(text).strip())
    return match.group(1).upper() if match else None


def _phrase_letter(response: str, match: re.Match) -> str | None:
    """The letter an answer phrase names; after the pronoun "I", a wrapped letter later in its sentence."""
    letter, rest = match.group(1), response[match.end():]
    if letter != "I" or not _PRONOUN_FOLLOWS.match(rest):
        return letter
    sentence = _SENTENCE_END.split(rest, maxsplit=1)[0]
    wrapped = _WRAPPED_LETTER.search(sentence)
    return (wrapped.group(1) or wrapped.group(2)) if wrapped else None


def extract_choice(response: str, n_options: int = 4) -> str | None:
    """The option letter a response chose (``A``.. up to ``n_options``), or None."""
    letters = LETTERS[:n_options]
    boxed = last_boxed(response)
    letter = _boxed_letter(boxed) if boxed is not None else None
    if letter is not None:  # a box naming a letter decides, even a letter out of range (then wrong)
        return letter if letter in letters else None
    # no box, or a box naming no letter (a computed value boxed out of habit): the last answer phrase decides
    response = _MATH_LETTER.sub(r"(\1\2)", _unwrap(response))
    for match in reversed(list(_ANSWER_PHRASE.finditer(response))):
        letter = _phrase_letter(response, match)
        if letter is None or (letter == "I" and letter not in letters):
            continue  # the pronoun ("Answer: I think ...", "Answer: I'm sure" with fewer than 9 options)
        return letter if letter in letters else None  # the last phrase naming a letter decides, as a box does
    return None


def score_choice(response: str, gold_letter: str, n_options: int) -> tuple[str | None, bool]:
    """(chosen letter, correct) for one response."""
    chosen = extract_choice(response, n_options)
    return chosen, chosen is not None and chosen == gold_letter.strip().upper()
