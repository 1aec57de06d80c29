"""Evaluation: benchmarks, generation backends, math grading and the sandbox for model-written code."""
from __future__ import annotations

import math
import os
from typing import Sequence

__all__ = ["evaluate", "grade_math", "mean_stderr", "run_untrusted", "usable_cpus"]


def usable_cpus() -> int:
    """The CPUs this process may run on: a SLURM job's allocation (its cpuset), not the node's os.cpu_count().
    Workers per node CPU on a few allocated ones run many times slower than the wall-clock limits they work under
    assume (sandboxed programs' per-input limits, math-verify's timeouts)."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def mean_stderr(values: Sequence[float]) -> float | None:
    """Standard error of the mean (sample std, n-1), as lm-eval reports it; None for fewer than 2 values."""
    n = len(values)
    if n < 2:
        return None
    mu = sum(values) / n
    return math.sqrt(sum((v - mu) ** 2 for v in values) / (n - 1)) / math.sqrt(n)


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
