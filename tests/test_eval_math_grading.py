"""Math and multiple-choice grading: extraction, math-verify equivalences, the process-pool batch grader."""
from __future__ import annotations

import threading

import pytest

from mgrpo.evaluation import grade_math
from mgrpo.evaluation.choice_grading import extract_choice, score_choice
from mgrpo.evaluation.math_grading import (
    answers_equivalent,
    extract_final_answer,
    grade_math_batch,
    last_boxed,
)

# (response, gold, expected verdict) -- labelled by hand.
LABELLED = [
    ("The answer is \\boxed{0.5}.", "\\frac{1}{2}", True),            # decimal vs fraction
    ("\\boxed{\\dfrac{3}{4}}", "\\frac34", True),                      # \dfrac
    ("\\boxed{\\frac{3}{4}}", "0.75", True),
    ("so \\boxed{x=5}", "5", True),                                  # x = 5 vs 5
    ("\\boxed{x = 5}", "5", True),
    ("\\boxed{(-\\infty, 3]}", "(-\\infty,3]", True),                # interval, spacing
    ("\\boxed{(2,5)}", "[2,5)", False),                              # interval: open vs half-open
    ("\\boxed{\\{3,2,1\\}}", "\\{1,2,3\\}", True),                    # set, order
    ("\\boxed{1, 2}", "\\{1,2\\}", True),
    ("\\boxed{1, 2, 4}", "\\{1,2\\}", False),
    ("\\boxed{2\\sqrt{2}}", "\\sqrt{8}", True),
    ("\\boxed{10}", "11", False),
    ("\\boxed{\\frac{1}{3}}", "0.333", False),                      # a rounded decimal is not 1/3
    ("\\boxed{\\pi}", "3.14", False),
    ("\\boxed{\\text{Evelyn}}", "\\text{Evelyn}", True),
    ("\\boxed{\\text{Bob}}", "\\text{Evelyn}", False),
    ("first \\boxed{3} then \\boxed{4}", "4", True),                 # the LAST box counts
    ("first \\boxed{3} then \\boxed{4}", "3", False),
    ("I think the final answer is $\\frac{2}{3}$.", "\\frac23", True),  # fallback: answer phrase
    ("We get $x^2$ and then $y=7$", "7", True),                      # fallback: last inline math
    ("Adding up gives 1,234 apples", "1234", True),                  # fallback: last number
    ("The answer is 12, which is even.", "12", True),                # the phrase's clause, not the sentence
    ("The answer is $5$. Check: $2+2=4$.", "5", True),               # the math right after the phrase
    ("The answer is 3.5.", "3.5", True),
    ("The answer is (1, 2), the vertex.", "(1,2)", True),            # a comma inside brackets is not the end
    ("I do not know.", "4", False),                                  # nothing to extract
    ("\\boxed{014}", "14", True),                                    # AIME-style leading zero
    ("\\boxed{50\\%}", "50", True),
    # Markdown emphasis around an answer phrase or its answer (no box): what the phrase announces is the answer.
    ("**Final Answer:** $\\frac12$", "\\frac{1}{2}", True),
    ("**Answer:** 42", "42", True),
    ("Answer: **42**", "42", True),
    ("So the final answer is **12**.", "12", True),
    ("Answer: **41**", "42", False),
    # An escaped dollar is a currency sign, not a math delimiter.
    ("The answer is $\\$20$.", "20", True),
    ("She pays \\$5 for apples and \\$13.90 for pears, \\$18.90 in all.", "\\$18.90", True),
]


@pytest.mark.parametrize("response,gold,expected", LABELLED)
def test_grade_math_matches_hand_labels(response, gold, expected):
    assert grade_math(response, gold) is expected


@pytest.mark.parametrize("text,expected", [
    ("\\boxed{\\frac{1}{2}}", "\\frac{1}{2}"),
    ("a \\boxed{\\{1, \\{2\\}\\}} b", "\\{1, \\{2\\}\\}"),   # nested braces
    ("\\boxed 5 is it", "5"),
    ("\\fbox{7}", "7"),
    ("\\boxed{3} and a truncated \\boxed{\\frac{1", "3"),       # unbalanced last box: take the earlier one
    ("no box here", None),
    # an empty box (the system prompt's "within \\boxed{}" echoed after the answer) holds no answer
    ("so \\boxed{5}. Output the final answer within \\boxed{}.", "5"),
    ("within \\boxed{ }", None),
])
def test_last_boxed(text, expected):
    assert last_boxed(text) == expected


@pytest.mark.parametrize("response,expected", [
    ("so the point is (1,2)", "2"),          # not "12": a comma is a thousands separator only before 3 digits
    ("a total of 12,345,678 grains", "12345678"),
    ("x = -0.25 and y = 1/3", "1/3"),
    ("It costs \\$5 and then \\$6 more", "6"),  # "\\$" is a currency sign: no "$...$" math span here
    ("so what is left is 15-5", "5"),         # a minus between numbers is not a sign
    ("the difference is (a+b)-4", "4"),
    ("the temperature drops to -5", "-5"),
    ("the point is (1,-2)", "-2"),
    ("then 3*-2", "-2"),
])
def test_last_number_fallback(response, expected):
    assert extract_final_answer(response) == expected


@pytest.mark.parametrize("response,expected", [
    ("**Answer:** 42", "42"),                       # the log shows the answer, not "** 42"
    ("**Final Answer:** $\\frac12$", "\\frac12"),
    ("Answer: **42**", "42"),
    ("The final answer is **12**.", "12"),
    ("The answer is: $7$", "7"),
])
def test_answer_phrase_ignores_markdown_emphasis(response, expected):
    assert extract_final_answer(response) == expected


def test_extraction_prefers_box_over_fallbacks():
    assert extract_final_answer("Answer: 3. But actually \\boxed{4}, or $5$") == "4"
    assert extract_final_answer("nothing") is None


def test_empty_or_missing_prediction_is_wrong():
    assert answers_equivalent(None, "1") is False
    assert answers_equivalent("  ", "1") is False


def test_grading_outside_main_thread_is_refused_not_silently_false():
    errors = []

    def worker():
        try:
            grade_math("\\boxed{1}", "1")
        except RuntimeError as err:
            errors.append(str(err))

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join()
    assert errors and "main thread" in errors[0]


def test_batch_grader_in_processes_agrees_with_hand_labels():
    cases = LABELLED * 6  # > one chunk per worker: exercises the pool, not the inline path
    verdicts = grade_math_batch([c[0] for c in cases], [c[1] for c in cases], processes=2, chunk_size=16)
    assert [correct for _, correct in verdicts] == [c[2] for c in cases]
    assert verdicts[0][0] == "0.5"  # the extracted answer comes back too


def test_batch_grader_rejects_mismatched_lengths():
    with pytest.raises(ValueError, match="2 responses but 1 gold"):
        grade_math_batch(["a", "b"], ["1"])


@pytest.mark.parametrize("response,n,expected", [
    ("so \\boxed{C}", 4, "C"),
    ("\\boxed{(b)}", 4, "B"),
    ("\\boxed{\\text{D}}", 4, "D"),
    ("\\boxed{C) 42}", 4, "C"),
    ("The answer is (B).", 4, "B"),
    ("Answer: **D**", 4, "D"),
    ("the answer is a prime number", 4, None),   # lower-case article, not option A
    ("\\boxed{E}", 4, None),                       # not among 4 options
    ("\\boxed{J}", 10, "J"),                       # MMLU-Pro has 10
    ("\\boxed{42}", 4, None),
    ("\\boxed{\\textit{C}}", 4, "C"),
    ("\\boxed{\\text{\\textbf{C}}}", 4, "C"),         # nested wrappers, unwrapped repeatedly
    ("\\boxed{\\text{Option C}}", 4, "C"),
    ("\\boxed{choice (b)}", 4, "B"),
    ("\\boxed{Choice}", 4, None),                    # the word alone names no option (not its "C")
    ("\\boxed{\\text{Options}} The answer is (B).", 4, "B"),  # nor its plural (not "S"): the phrase decides
    ("\\boxed{Choices}", 10, None),
    ("\\boxed{\\text{Option E}}", 4, None),           # outside the four options
    ("The correct answer is **(B)**", 4, "B"),      # bold around a bracketed letter
    ("Answer: I think it is (C).", 10, "C"),        # the pronoun I is not option I
    ("The answer is (C). Answer: I hope this helps.", 10, "C"),
    ("Answer: I hope this helps.", 10, None),
    ("Answer: I", 10, "I"),                         # but option I itself still is
    ("Answer: (I)", 10, "I"),
    ("The answer is I.", 10, "I"),
    ("Answer: **I**", 10, "I"),
    # "A" before a word stays option A: reading it as the article would take (B) from a justification
    ("The answer is A because (B) contradicts the data.", 4, "A"),
    # a last box naming no option (a computed value, as MATH-trained models box) leaves it to the answer phrase
    ("The energy is \\boxed{5 \\text{ eV}}, so the answer is (C).", 4, "C"),
    ("\\boxed{42}. Answer: B", 4, "B"),
    ("\\boxed{E}. The answer is (B).", 4, None),  # but a box naming a letter decides, even one out of range
    # and so does the last answer phrase: a final letter outside the options is wrong, not the earlier letter
    ("The answer is (B). Checking again, the answer is (E).", 4, None),
    ("Answer: B\nOn reflection, Answer: G", 4, None),
    ("The answer is (C). Answer: I'm confident.", 4, "C"),  # the pronoun I, outside 4 options, names none
    ("\\boxed{B = 0.5\\,\\text{T}}", 4, None),          # a boxed equation names a quantity, not option B
    ("\\boxed{B = 0.5\\,\\text{T}}, so the answer is (C).", 4, "C"),
    ("\\boxed{A_1}", 4, None),
    # the phrase's letter in LaTeX (no box): math mode or a text wrapper around it
    ("The answer is $D$.", 4, "D"),
    ("The answer is $(D)$.", 4, "D"),
    ("The answer is \\textbf{(C)}.", 4, "C"),
    ("Answer: $\\text{D}$", 4, "D"),
    ("The answer is \\(B\\).", 4, "B"),
    ("The answer is $\\Delta E$.", 4, None),        # a Greek capital is no option letter
    ("The answer is $B = 0.5$ T.", 4, None),          # a quantity named B, not option B
    ("The answer is B = 0.5 T.", 4, None),
    # the option named as such
    ("The correct answer is option (B).", 4, "B"),
    ("Answer: Option C", 4, "C"),
    ("The answer is choice **D**.", 4, "D"),
    ("The answer is optional here; see below.", 4, None),
])
def test_extract_choice(response, n, expected):
    assert extract_choice(response, n) == expected


def test_score_choice():
    assert score_choice("\\boxed{B}", "B", 4) == ("B", True)
    assert score_choice("\\boxed{A}", "B", 4) == ("A", False)
    assert score_choice("no letter", "B", 4) == (None, False)


def test_grading_pool_uses_the_cpus_this_job_was_given_not_the_whole_node(monkeypatch):
    # math-verify grades an answer False when its timeout fires: a worker per node CPU on 2 allocated ones would
    # make correct answers time out
    import os

    from mgrpo.evaluation import math_grading

    sizes = []

    class RecordingPool(math_grading.ProcessPoolExecutor):
        def __init__(self, max_workers=None, **kwargs):
            sizes.append(max_workers)
            super().__init__(max_workers=max_workers, **kwargs)

    monkeypatch.setattr(math_grading, "ProcessPoolExecutor", RecordingPool)
    monkeypatch.setattr(os, "cpu_count", lambda: 64)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {4, 5}, raising=False)
    verdicts = grade_math_batch(["\\boxed{2}"] * 300, ["2"] * 300, chunk_size=50)
    assert sizes == [2] and all(correct for _, correct in verdicts)
