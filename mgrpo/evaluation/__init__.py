"""Evaluation: benchmarks, generation backends, math grading and the sandbox for model-written code."""
from __future__ import annotations

__all__ = ["evaluate", "grade_math", "run_untrusted"]


def __getattr__(name):  # lazy: importing the package must not import math-verify or the sandbox
    if name == "evaluate":  # the Python side of `mgrpo evaluate`
        from mgrpo.evaluation.runner import evaluate

        return evaluate
    if name == "grade_math":
        from mgrpo.evaluation.math_grading import grade_math

        return grade_math
    if name == "run_untrusted":
        from mgrpo.evaluation.sandbox import run_untrusted

        return run_untrusted
    raise AttributeError(f"module 'mgrpo.evaluation' has no attribute {name!r}")
