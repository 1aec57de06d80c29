"""Benchmark (not a test): math grading throughput of grade_math_batch with a process pool.

Responses are MATH-style: a short derivation ending in ``\\boxed{answer}``, half with the problem's own gold
answer (correct), half with another problem's (mostly wrong). Answers come from /work/shared/data/math500.jsonl
(or --answers FILE) when present, else generated ones (integers, fractions, radicals, intervals, tuples).

    python bench/grading_throughput.py --responses 4000 --processes 2

Prints one JSON line per measurement: answers/s overall and per worker process. Pool start-up (spawning the
workers and importing math-verify/sympy in each) is measured separately from grading.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mgrpo.evaluation.math_grading import _parse_latex, _score_chunk, grade_math_batch  # noqa: E402

DEFAULT_ANSWERS = Path(__file__).resolve().parents[2] / "shared" / "data" / "math500.jsonl"


def load_answers(path: Path) -> list[str]:
    if path.is_file():
        return [json.loads(line)["answer"] for line in path.read_text().splitlines() if line.strip()]
    rng = random.Random(0)
    forms = [lambda: str(rng.randint(0, 999)), lambda: f"\\frac{{{rng.randint(1, 50)}}}{{{rng.randint(2, 60)}}}",
             lambda: f"{rng.randint(2, 9)}\\sqrt{{{rng.choice([2, 3, 5, 7])}}}",
             lambda: f"({rng.randint(-9, 0)}, {rng.randint(1, 9)}]", lambda: f"({rng.randint(0, 9)}, {rng.randint(0, 9)})"]
    return [rng.choice(forms)() for _ in range(500)]


def make_pairs(answers: list[str], n: int, seed: int = 0) -> tuple[list[str], list[str]]:
    rng = random.Random(seed)
    responses, golds = [], []
    for i in range(n):
        gold = answers[i % len(answers)]
        said = gold if i % 2 == 0 else rng.choice(answers)
        responses.append(f"Let us compute step by step. First ... then ... Hence the answer is \\boxed{{{said}}}.")
        golds.append(gold)
    return responses, golds


def _score_cold(pairs):
    """Grade one chunk with an empty parse cache, so repeated answer strings across chunks (the benchmark
    cycles through 500 answers) are not graded from cache: a conservative, per-chunk-fresh measurement."""
    _parse_latex.cache_clear()
    return _score_chunk(pairs)


def _warm(_):
    _score_chunk([("\\boxed{1}", "1")])  # import math-verify + sympy in the worker
    return os.getpid()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--answers", type=Path, default=DEFAULT_ANSWERS)
    parser.add_argument("--responses", type=int, default=4000)
    parser.add_argument("--processes", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--chunk-size", type=int, default=64)
    args = parser.parse_args()

    answers = load_answers(args.answers)
    responses, golds = make_pairs(answers, args.responses)
    source = str(args.answers) if args.answers.is_file() else "generated"
    machine = {"cpus": os.cpu_count(), "python": platform.python_version(), "machine": platform.machine()}

    # Single process, main thread (no pool): the per-core baseline, warmed up like the pool's workers (the first
    # call imports math-verify and sympy, ~10 % of this row otherwise).
    n_single = min(len(responses), 1000)
    _warm(0)
    start = time.perf_counter()
    verdicts = [ok for i in range(0, n_single, args.chunk_size)
                for _, ok in _score_cold(list(zip(responses[i:min(i + args.chunk_size, n_single)],
                                                  golds[i:min(i + args.chunk_size, n_single)])))]
    single = time.perf_counter() - start
    print(json.dumps({"mode": "main-thread", "answers": n_single, "seconds": round(single, 3),
                      "answers_per_s": round(n_single / single, 1), "correct_frac": round(sum(verdicts) / n_single, 3),
                      "source": source, **machine}))

    # Process pool: start-up, then grading on warm workers (same code path as grade_math_batch).
    start = time.perf_counter()
    with ProcessPoolExecutor(max_workers=args.processes, mp_context=get_context("spawn")) as pool:
        list(pool.map(_warm, range(args.processes)))
        startup = time.perf_counter() - start
        chunks = [list(zip(responses[i:i + args.chunk_size], golds[i:i + args.chunk_size]))
                  for i in range(0, len(responses), args.chunk_size)]
        start = time.perf_counter()
        results = [v for chunk in pool.map(_score_cold, chunks) for v in chunk]
        pooled = time.perf_counter() - start
    assert len(results) == len(responses)
    print(json.dumps({"mode": "process-pool", "processes": args.processes, "answers": len(responses),
                      "startup_seconds": round(startup, 2), "seconds": round(pooled, 3),
                      "answers_per_s": round(len(responses) / pooled, 1),
                      "answers_per_s_per_process": round(len(responses) / pooled / args.processes, 1),
                      "source": source, **machine}))

    # The public entry, end to end (includes its own pool start-up; caches warm within each worker).
    start = time.perf_counter()
    grade_math_batch(responses, golds, processes=args.processes, chunk_size=args.chunk_size)
    total = time.perf_counter() - start
    print(json.dumps({"mode": "grade_math_batch (incl. start-up)", "processes": args.processes,
                      "answers": len(responses), "seconds": round(total, 3),
                      "answers_per_s": round(len(responses) / total, 1)}))


if __name__ == "__main__":
    main()
