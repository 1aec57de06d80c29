"""Code benchmarks (MBPP+ via evalplus, LiveCodeBench): prompts, generation, sandboxed scoring, result files.

Entry point for `mgrpo evaluate`: `evaluate_code(benchmark, generator, data_path, out_dir, settings)`.
`settings` keys (all optional): model, backend, temperature (0.8), top_p (1.0), max_tokens (3072), seed (0),
samples (1), limit (None), workers (the CPUs this process may use), timeout_s (per LCB test 6.0; per MBPP+
candidate 150.0), memory_mb, and for LiveCodeBench start_date / end_date ("%Y-%m-%d") and release_version
("release_latest");
allow_weak_sandbox (False: refuse to run where the sandbox lacks namespaces or its seccomp filter; see docs/sandbox.md).
"""
from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

from mgrpo.atomic import write_json, write_jsonl
from mgrpo.evaluation import mean_stderr, usable_cpus

__all__ = ["evaluate_code", "prepare_data", "check_code_options", "BENCHMARKS", "CODE_OPTIONS"]

BENCHMARKS = ("mbpp_plus", "livecodebench")
# What `mgrpo evaluate --code-option KEY=VALUE` may set (the rest come from its own flags), as config/schema.yaml's
# evaluation.code_options.
CODE_OPTIONS = {"workers", "timeout_s", "memory_mb", "start_date", "end_date", "release_version", "allow_weak_sandbox"}
KNOWN_SETTINGS = {"model", "backend", "temperature", "top_p", "max_tokens", "seed", "samples", "limit", *CODE_OPTIONS}


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_date(value) -> bool:
    try:
        datetime.strptime(value, "%Y-%m-%d")
    except (TypeError, ValueError):
        return False
    return re.fullmatch(r"\d{4}-\d{2}-\d{2}", value) is not None


# each option's rule, as config/schema.yaml's evaluation.code_options (and release_files' release names)
_OPTION_RULES = {
    "workers": (lambda v: _is_int(v) and v >= 1, "an integer >= 1"),
    "timeout_s": (lambda v: (_is_int(v) or isinstance(v, float)) and v > 0, "a number > 0 (seconds)"),
    "memory_mb": (lambda v: _is_int(v) and v >= 1, "an integer >= 1 (MiB)"),
    "start_date": (_is_date, 'a date "YYYY-MM-DD"'),
    "end_date": (_is_date, 'a date "YYYY-MM-DD"'),
    "release_version": (lambda v: isinstance(v, str) and re.fullmatch(r"release_latest|release_v\d+", v) is not None,
                        "'release_latest' or 'release_vK'"),
    "allow_weak_sandbox": (lambda v: isinstance(v, bool), "true or false"),
}


def check_code_options(options: dict) -> None:
    """Refuse a code option no code benchmark reads, or a value of the wrong type or range, before a model is
    loaded for it."""
    unknown = set(options) - CODE_OPTIONS
    if unknown:
        raise ValueError(f"unknown code option(s) {', '.join(sorted(unknown))}; "
                         f"known: {', '.join(sorted(CODE_OPTIONS))}")
    for key, value in options.items():
        valid, expected = _OPTION_RULES[key]
        if not valid(value):
            raise ValueError(f"code option {key} must be {expected} (got {value!r})")


def check_data(benchmark: str, data_path, options: dict) -> None:
    """Load and validate the benchmark's problems as evaluate_code will, with these (checked) code options, before
    a model is loaded for them: a malformed, empty or misplaced data file, or options that select no problem."""
    benchmark_io = _mbpp_plus(data_path, options) if benchmark == "mbpp_plus" else _livecodebench(data_path, options)
    if not benchmark_io["problems"]:
        raise ValueError(f"{benchmark}: no problems to evaluate in {data_path} with these settings")


def prepare_data(benchmark: str, out_dir) -> dict:
    """`mgrpo prepare-data` for a code benchmark (mgrpo.evaluation.code.prepare; needs network access)."""
    from mgrpo.evaluation.code.prepare import prepare_data as prepare

    return prepare(benchmark, out_dir)


def _settings_dict(settings) -> tuple[dict, object | None]:
    """A dict of settings, plus the sampling object to hand to the generator when one was given.

    Accepts mgrpo.evaluation.generation.EvalSettings (model, backend, sampling, samples, limit, extra), or a plain
    dict of the same settings, which callers without the evaluation's dependencies (this package imports only the
    standard library) can build."""
    if isinstance(settings, dict):
        return dict(settings), None
    values = {"model": settings.model, "backend": settings.backend, "limit": settings.limit, **settings.extra}
    if settings.samples is not None:
        values["samples"] = settings.samples
    for key in ("temperature", "top_p", "max_tokens", "seed"):
        values[key] = getattr(settings.sampling, key)
    return values, settings.sampling


def _chat(generator, user_message: str) -> str:
    """The generator's chat template (mgrpo.evaluation.generation.Generator) for one user message."""
    return generator.apply_chat_template([{"role": "user", "content": user_message}])


def evaluate_code(benchmark: str, generator, data_path, out_dir, settings) -> dict:
    """Generate, score in the sandbox, write `out_dir/<benchmark>.json` and `.samples.jsonl`; return the summary."""
    settings, sampling = _settings_dict(settings)
    settings = {k: v for k, v in settings.items() if v is not None}
    if benchmark not in BENCHMARKS:
        raise ValueError(f"unknown code benchmark {benchmark!r}; known: {', '.join(BENCHMARKS)}")
    unknown = set(settings) - KNOWN_SETTINGS
    if unknown:
        raise ValueError(f"unknown setting(s) {sorted(unknown)}; known: {sorted(KNOWN_SETTINGS)}")
    samples = int(settings.get("samples", 1))
    if samples < 1:
        raise ValueError(f"settings['samples'] must be >= 1, got {samples}")
    generation = {
        "temperature": float(settings.get("temperature", 0.8)),
        "top_p": float(settings.get("top_p", 1.0)),
        "max_tokens": int(settings.get("max_tokens", 3072)),
        "backend": settings.get("backend", getattr(generator, "backend", "unknown")),
        "seed": int(settings.get("seed", 0)),
    }
    benchmark_io = _mbpp_plus(data_path, settings) if benchmark == "mbpp_plus" else _livecodebench(data_path, settings)
    problems, dataset = benchmark_io["problems"], benchmark_io["dataset"]
    if settings.get("limit") is not None:
        problems = problems[: int(settings["limit"])]
    if not problems:
        raise ValueError(f"{benchmark}: no problems to evaluate in {data_path} with these settings")
    from mgrpo.evaluation.sandbox import evaluation_sandbox

    # fails closed here, before any generation, when the sandbox cannot isolate (unless allow_weak_sandbox)
    sandbox_record = evaluation_sandbox(settings.get("allow_weak_sandbox", False))
    workers = max(1, int(settings.get("workers", usable_cpus())))
    if benchmark_io["reference"] is not None:
        _check_references(benchmark, problems, benchmark_io, sandbox_record, workers)

    prompts = [_chat(generator, benchmark_io["prompt"](p)) for p in problems]
    params = sampling if sampling is not None else {k: generation[k] for k in ("temperature", "top_p", "max_tokens",
                                                                              "seed")}
    responses = generator.generate(prompts, samples, params)
    if len(responses) != len(problems) or any(len(r) != samples for r in responses):
        raise ValueError(f"generator returned {[len(r) for r in responses]} responses for {len(problems)} prompts "
                         f"x {samples} samples")

    jobs = [(i, j) for i in range(len(problems)) for j in range(samples)]
    extracted = {(i, j): benchmark_io["extract"](responses[i][j], problems[i]) for i, j in jobs}
    # each job waits on its own sandbox process; sandbox_record notes the layers and limits of every run
    with sandbox_record, ThreadPoolExecutor(max_workers=workers) as pool:
        verdicts = dict(zip(jobs, pool.map(lambda job: benchmark_io["score"](problems[job[0]], extracted[job]), jobs)))

    per_problem = [sum(verdicts[(i, j)]["passed"] for j in range(samples)) / samples for i in range(len(problems))]
    value = sum(per_problem) / len(per_problem)
    stderr = mean_stderr(per_problem)  # as for every other benchmark: None (JSON null) for a single problem
    summary = {
        "benchmark": benchmark,
        "model": settings.get("model", getattr(generator, "name", "unknown")),
        "metric": "pass@1",
        "value": value,
        "stderr": stderr,
        "n_problems": len(problems),
        "samples_per_problem": samples,
        "generation": generation,
        "dataset": dataset,
        "sandbox": sandbox_record.as_dict(),
    }
    rows = [{"problem_id": benchmark_io["id"](problems[i]), "prompt": prompts[i], "responses": responses[i],
             "extracted": [extracted[(i, j)] for j in range(samples)],
             "verdicts": [verdicts[(i, j)] for j in range(samples)], "pass@1": per_problem[i]}
            for i in range(len(problems))]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_jsonl(out / f"{benchmark}.samples.jsonl", rows)
    write_json(out / f"{benchmark}.json", summary)
    return summary


def _check_references(benchmark: str, problems: list, benchmark_io: dict, sandbox_record, workers: int) -> None:
    """Run the benchmark's reference solutions before any generation: a problem whose expected outputs cannot be
    computed here (its canonical solution times out on this node, or returns something that is not plain data) stops
    the evaluation, naming it, rather than scoring every sample of it as failed. They run in parallel, as the
    candidates do (evalplus times them serially): a reference slowed by the others only makes the per-input limits
    max(1 s, 4 x its time) more lenient, and only above 0.25 s per input (docs/sandbox.md)."""
    def failure(problem):
        try:
            benchmark_io["reference"](problem)
        except benchmark_io["reference_error"] as error:
            return f"{benchmark_io['id'](problem)}: {error}"
        return None

    with sandbox_record, ThreadPoolExecutor(max_workers=workers) as pool:
        failures = [f for f in pool.map(failure, problems) if f is not None]
    if failures:
        raise RuntimeError(f"{benchmark}: the reference solution of {len(failures)} of {len(problems)} problems "
                           f"could not be run here, so their samples cannot be graded: " + "; ".join(failures[:5]) +
                           (f"; and {len(failures) - 5} more" if len(failures) > 5 else ""))


def _mbpp_plus(data_path, settings: dict) -> dict:
    from mgrpo.evaluation.code import mbpp_plus

    timeout_s = float(settings.get("timeout_s", 150.0))
    memory_mb = int(settings.get("memory_mb", 4096))
    return {
        "problems": mbpp_plus.load_problems(data_path),
        "dataset": {"source": "evalplus/mbppplus", "revision": mbpp_plus.dataset_hash(data_path),
                    "path": str(data_path)},
        "prompt": mbpp_plus.build_prompt,
        "extract": lambda response, problem: mbpp_plus.extract_solution(response, problem),
        "score": lambda problem, code: mbpp_plus.score_solution(problem, code, timeout_s=timeout_s,
                                                               memory_mb=memory_mb),
        # expected outputs come from running the canonical solution (kept in this process for the scoring)
        "reference": lambda problem: mbpp_plus.ground_truth(problem, timeout_s, memory_mb),
        "reference_error": mbpp_plus.GroundTruthError,
        "id": lambda problem: problem["task_id"],
    }


def _livecodebench(data_path, settings: dict) -> dict:
    from mgrpo.evaluation.code import livecodebench as lcb

    timeout_s = float(settings.get("timeout_s", lcb.DEFAULT_TEST_TIMEOUT_S))
    memory_mb = int(settings.get("memory_mb", 2048))
    release = settings.get("release_version", "release_latest")
    files = lcb.release_files(data_path, release)
    return {
        "problems": lcb.load_problems(data_path, settings.get("start_date"), settings.get("end_date"), release),
        "dataset": {"source": "livecodebench/code_generation_lite", "revision": release, "path": str(data_path),
                    "files": [f.name for f in files], "start_date": settings.get("start_date"),
                    "end_date": settings.get("end_date")},
        "prompt": lcb.build_prompt,
        "extract": lambda response, problem: lcb.extract_code(response),
        "score": lambda problem, code: lcb.score_code(problem, code, timeout_s=timeout_s, memory_mb=memory_mb),
        "reference": None,  # the expected outputs are in the data
        "id": lambda problem: problem.question_id,
    }

