"""Math answer grading: extract the final answer of a response, decide equivalence with math-verify.

Extraction is ours and explicit (so the per-sample log shows exactly what was graded):
the content of the LAST ``\\boxed{...}`` (or ``\\fbox{...}``; an empty or truncated last box: the one before);
failing that, the text after the last "final answer is" / "the answer is" / "answer:" phrase; failing that, the
last inline math ``$...$``/``\\(...\\)``/``\\[...\\]``; failing that, the last number. Equivalence is
math-verify's ``verify(parse(gold), parse(pred))``, both sides wrapped in ``$...$`` so that math-verify parses them
as LaTeX.

math-verify bounds parsing and comparison with ``signal.alarm``: that only works in the main thread. Grade in
the main thread, or use :func:`grade_math_batch`, which fans out to worker PROCESSES (never threads).
"""
from __future__ import annotations

import functools
import multiprocessing
import re
import threading
from concurrent.futures import ProcessPoolExecutor
from typing import Sequence

from mgrpo.evaluation import usable_cpus

# Seconds math-verify may spend parsing one expression / comparing two.
TIMEOUT_S = 5

_BOXED = re.compile(r"\\(?:boxed|fbox)\s*")
_ANSWER_PHRASE = re.compile(r"(?:final answer is|the answer is|answer\s*:)\s*", re.IGNORECASE)
# An escaped dollar ("\\$5") is a currency sign, not a delimiter: it neither opens a math span nor closes one.
_INLINE_MATH = re.compile(r"(?<!\\)\$\$((?:\\.|[^\\])+?)\$\$|(?<!\\)\$((?:\\.|[^$\\])+?)\$|\\\((.+?)\\\)|\\\[(.+?)\\\]",
                          re.DOTALL)
_INTEGER = re.compile(r"-?\d+")
# A comma inside a number only as a thousands separator (1,234), so that "(1,2)" is two numbers.
# A minus sign only where it can be a sign: "15-5" ends in 5, not -5.
_SIGN = r"(?:(?<![\w)\]}.])-)?"
_NUMBER = re.compile(_SIGN + r"(?:\d{1,3}(?:,\d{3})+(?![\d])(?:\.\d+)?|\d+(?:\.\d+)?(?:/\d+)?|\.\d+)")


def last_boxed(text: str) -> str | None:
    """Content of the last non-empty ``\\boxed{...}``/``\\fbox{...}`` (braces balanced), or ``\\boxed 5`` -> ``5``."""
    matches = list(_BOXED.finditer(text))
    for match in reversed(matches):
        start = match.end()
        if start < len(text) and text[start] == "{":
            depth = 0
            for index in range(start, len(text)):
                if text[index] == "{":
                    depth += 1
                elif text[index] == "}":
                    depth -= 1
                    if depth == 0:
                        break
            else:
                continue  # unbalanced (truncated response): try an earlier box
            content = text[start + 1:index].strip()
            if content:
                return content
            continue  # an empty box ("... within \\boxed{}", the instruction echoed) holds no answer
        token = re.match(r"[^\s$]+", text[start:])  # "\boxed 5"
        if token:
            return token.group(0)
    return None


_MARKUP = "*_:"


def _after_answer_phrase(text: str) -> str | None:
    """What the last answer phrase announces: the inline math right after it, else its line up to the end of
    the clause (a comma, semicolon or full stop outside brackets: "The answer is 12, which is even")."""
    matches = list(_ANSWER_PHRASE.finditer(text))
    if not matches:
        return None
    # Markdown emphasis and a colon around the phrase or its answer ("**Answer:** 42", "answer is **12**") are
    # no part of the answer.
    rest = text[matches[-1].end():].lstrip(_MARKUP + " \t\r\n").split("\n", 1)[0].strip()
    math = _INLINE_MATH.match(rest)
    if math:
        return next(group for group in math.groups() if group).strip() or None
    return _first_clause(rest).strip().strip(_MARKUP).strip() or None


def _first_clause(text: str) -> str:
    depth = 0
    for index, char in enumerate(text):
        depth += char in "([{"
        depth -= char in ")]}"
        ends_clause = char in ",;" and text[index + 1:index + 2] in (" ", "") or \
            char == "." and not text[index + 1:index + 2].isdigit()
        if depth <= 0 and ends_clause:
            return text[:index]
    return text


def extract_final_answer(response: str) -> str | None:
    """The final answer of a model response, as a string, or None when it has none."""
    boxed = last_boxed(response)
    if boxed is not None:
        return boxed
    phrase = _after_answer_phrase(response)
    if phrase is not None:
        return phrase
    maths = _INLINE_MATH.findall(response)
    if maths:
        return next(group for group in maths[-1] if group).strip()
    numbers = _NUMBER.findall(response)
    if numbers:
        return numbers[-1].replace(",", "")
    return None


def _require_main_thread() -> None:
    if threading.current_thread() is not threading.main_thread():
        # math-verify would swallow the signal error and grade every answer False.
        raise RuntimeError("math grading uses SIGALRM (math-verify) and must run in the main thread; "
                           "use grade_math_batch (worker processes) instead of threads")


@functools.lru_cache(maxsize=8192)
def _parse_latex(text: str):
    from math_verify import parse

    return tuple(parse(f"${text}$", parsing_timeout=TIMEOUT_S))


def answers_equivalent(predicted: str | None, gold: str) -> bool:
    """math-verify equivalence of an extracted answer and the gold answer (both LaTeX strings)."""
    if predicted is None or not str(predicted).strip():
        return False
    _require_main_thread()
    from math_verify import verify

    gold, predicted = str(gold).strip(), str(predicted).strip()
    # Fast paths with math-verify's own verdicts: identical strings are equal; two integers are equal iff
    # their values are (math-verify compares them numerically). They skip the slow LaTeX parse.
    if _normalise(gold) == _normalise(predicted):
        return True
    if _INTEGER.fullmatch(gold) and _INTEGER.fullmatch(predicted):
        return int(gold) == int(predicted)
    gold_parsed, pred_parsed = _parse_latex(gold), _parse_latex(predicted)
    if not gold_parsed or not pred_parsed:
        return _normalise(gold) == _normalise(predicted)
    return bool(verify(list(gold_parsed), list(pred_parsed), timeout_seconds=TIMEOUT_S))


def _normalise(text: str) -> str:
    # Whitespace carries no meaning in LaTeX math; case does (x vs X).
    return re.sub(r"\s+", "", text).strip("$")


def score_math(response: str, gold: str) -> tuple[str | None, bool]:
    """(extracted answer, correct) for one response."""
    extracted = extract_final_answer(response)
    return extracted, answers_equivalent(extracted, gold)


def grade_math(response: str, gold: str) -> bool:
    """True when the final answer of ``response`` is mathematically equivalent to ``gold``."""
    return score_math(response, gold)[1]


def _score_chunk(pairs: list[tuple[str, str]]) -> list[tuple[str | None, bool]]:
    return [score_math(response, gold) for response, gold in pairs]


def grade_math_batch(responses: Sequence[str], golds: Sequence[str], processes: int | None = None,
                     chunk_size: int = 64) -> list[tuple[str | None, bool]]:
    """(extracted, correct) for each (response, gold) pair, graded in a pool of worker processes.

    ``processes=1`` (or a batch smaller than one chunk) grades inline in the calling (main) thread.
    Workers are started with ``spawn`` so that a parent holding torch/vLLM threads is never forked.
    """
    if len(responses) != len(golds):
        raise ValueError(f"grade_math_batch: {len(responses)} responses but {len(golds)} gold answers")
    pairs = [(str(r), str(g)) for r, g in zip(responses, golds)]
    processes = processes or usable_cpus()  # math-verify's timeouts grade an answer False: no oversubscription
    if processes == 1 or len(pairs) <= chunk_size:
        return _score_chunk(pairs)
    chunks = [pairs[i:i + chunk_size] for i in range(0, len(pairs), chunk_size)]
    with ProcessPoolExecutor(max_workers=min(processes, len(chunks)),
                             mp_context=multiprocessing.get_context("spawn")) as pool:
        return [verdict for chunk in pool.map(_score_chunk, chunks) for verdict in chunk]
