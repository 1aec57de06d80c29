"""The one evaluation entry (``mgrpo evaluate`` and :func:`evaluate`): every benchmark, every method, same protocol.

For each benchmark it writes ``OUT_DIR/<benchmark>.json`` (the result, schema in docs/architecture.md) and
``OUT_DIR/<benchmark>.samples.jsonl`` (per problem: prompt, every response, extracted answers, verdicts).
Everything that can be checked is checked before the model is loaded: benchmark names, data files, the model dir.

With a ``cache_dir`` (the workflow gives one outside Snakemake's outputs, which it deletes before a rerun), each
benchmark's two files are kept there too, under a key: the model's files (path, size, mtime), the data's content
(sha256), every setting that shapes the result, and the harness (:func:`harness_fingerprint`: the evaluation
code, task files and grading packages' versions). A later call with the same key copies them instead of
evaluating again, so adding one benchmark to a finished grid evaluates only that one, and no model is loaded
when every benchmark is cached. Responses are also kept there chunk by chunk while a benchmark is generated, so
that a preempted job resumes its generation (:mod:`mgrpo.evaluation.resumable`).
"""
from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

from mgrpo.evaluation import mean_stderr
from mgrpo.evaluation.benchmarks import EVAL_TEMPERATURE, Benchmark, parse_benchmarks
from mgrpo.atomic import atomic_path, check_folder, write_json, write_jsonl
from mgrpo.evaluation.datasets import data_file, dataset_record, file_sha256, load_docs, read_manifest
from mgrpo.evaluation.generation import (
    BACKENDS,
    EvalSettings,
    Generator,
    SamplingParams,
    check_model_dir,
    load_generator,
)
from mgrpo.evaluation.resumable import ChunkedGenerator


def _toy_rows(path: Path, limit: int | None) -> list[dict]:
    from mgrpo.toy.task import read_jsonl  # the toy task module is optional for the LLM benchmarks

    rows = read_jsonl(path)
    return rows[:limit] if limit else rows


def run_toy(generator: Generator, path: Path, samples: int, params: SamplingParams,
            limit: int | None = None) -> tuple[dict, list[dict]]:
    """The toy test split: raw prompts (no chat template), graded with the toy task's own answer extraction."""
    from mgrpo.toy.task import extract_answer

    rows = _toy_rows(path, limit)
    responses = generator.generate([row["prompt"] for row in rows], samples, params)
    records = []
    for row, outs in zip(rows, responses, strict=True):
        if len(outs) != samples:
            raise RuntimeError(f"toy: problem {row['id']} got {len(outs)} samples, expected {samples}")
        extracted = [extract_answer(out) for out in outs]
        gold = str(row["answer"]).strip()
        records.append({"id": row["id"], "prompt": row["prompt"], "gold": gold, "responses": list(outs),
                        "extracted": extracted, "correct": [e is not None and e == gold for e in extracted]})
    per_problem = [sum(r["correct"]) / samples for r in records]
    return {"avg": sum(per_problem) / len(per_problem), "avg_stderr": mean_stderr(per_problem),
            "pass": sum(any(r["correct"]) for r in records) / len(records), "n_problems": len(records)}, records


def _check_data(benchmark: Benchmark, data_dir: Path | None, code_options: dict | None = None) -> Path | None:
    if benchmark.runner == "code":
        from mgrpo.evaluation import code

        if data_dir is None:
            raise ValueError(f"benchmark {benchmark.name!r} reads <data-dir>/{benchmark.name}.jsonl "
                             f"(or the folder <data-dir>/{benchmark.name}/): pass --data-dir")
        for candidate in (Path(data_dir) / f"{benchmark.name}.jsonl", Path(data_dir) / benchmark.name):
            if candidate.exists():
                code.check_data(benchmark.name, candidate, code_options or {})
                return candidate
        raise FileNotFoundError(f"data for {benchmark.name} not found: {Path(data_dir) / benchmark.name}.jsonl "
                                f"(or folder {Path(data_dir) / benchmark.name})")
    path = data_file(benchmark.name, data_dir)
    if benchmark.runner == "toy":
        _toy_rows(path, None)
    else:
        load_docs(benchmark.name, path)
    return path


def _result(benchmark: Benchmark, generator: Generator, model: str, k: int, params: SamplingParams,
            metrics: dict, path: Path, manifest: dict, backend: str) -> dict:
    return {
        "benchmark": benchmark.name, "model": model, "metric": f"avg@{k}", "value": metrics["avg"],
        "stderr": metrics["avg_stderr"], "n_problems": metrics["n_problems"], "samples_per_problem": k,
        "metrics": {f"avg@{k}": metrics["avg"], f"pass@{k}": metrics["pass"]},
        "generation": {"temperature": params.temperature, "top_p": params.top_p, "max_tokens": params.max_tokens,
                       "backend": getattr(generator, "backend", backend), "seed": params.seed},
        "dataset": dataset_record(benchmark.name, path, manifest),
        "harness": ({"runner": "toy", "prompt": "raw"} if benchmark.runner == "toy" else
                    {"runner": "lm_eval", "lm_eval": _version("lm_eval"), "task": f"mgrpo_{benchmark.name}",
                     "prompt": "chat template, system prompt asks for \\boxed{}"}),
    }


def _version(package: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package.replace("_", "-"))
    except PackageNotFoundError:
        return None


def content_sha256(path: Path) -> str:
    """sha256 of a file, or of a folder's files (relative path and sha256 of each, in order)."""
    path = Path(path)
    if path.is_file():
        return file_sha256(path)
    entries = [(str(p.relative_to(path)), file_sha256(p)) for p in sorted(path.rglob("*")) if p.is_file()]
    return hashlib.sha256(json.dumps(entries).encode()).hexdigest()


# The harness: whatever turns a model into results besides the model, data and settings. A fix to a prompt, a task
# file or a grader must not be answered with results cached before it (the cache outlives Snakemake reruns).
HARNESS_ROOT = Path(__file__).resolve().parents[1]  # the mgrpo package
# grading packages, and the generation stack (another vLLM, torch or transformers samples other responses)
HARNESS_PACKAGES = ("lm_eval", "math_verify", "latex2sympy2_extended", "sympy", "evalplus", "vllm", "torch",
                    "transformers")


def harness_files(root: Path) -> list[Path]:
    """The evaluation package's code and task files, and the toy task (the toy benchmark's grader), sorted."""
    files = [p for p in (root / "evaluation").rglob("*") if p.is_file() and p.suffix in (".py", ".yaml")]
    files += [p for p in [root / "toy" / "task.py"] if p.is_file()]
    return sorted(files)


def _other_task_file(path: Path, benchmark: str | None) -> bool:
    """A benchmark's task file (``lm_eval_tasks/<name>.yaml``; the shared ``_*.yaml`` bases excepted) is in its own
    key only: adding a benchmark's task file, or fixing one, must not re-evaluate every other benchmark."""
    return (benchmark is not None and path.parent.name == "lm_eval_tasks" and path.suffix == ".yaml"
            and not path.name.startswith("_") and path.stem != benchmark)


def harness_fingerprint(benchmark: str | None = None) -> dict:
    """sha256 over the harness files (relative path and content, in order) and the grading packages' versions;
    with ``benchmark``, of the task files its own only."""
    entries = [(p.relative_to(HARNESS_ROOT).as_posix(), file_sha256(p)) for p in harness_files(HARNESS_ROOT)
               if not _other_task_file(p, benchmark)]
    return {"files_sha256": hashlib.sha256(json.dumps(entries).encode()).hexdigest(),
            "versions": {p: _version(p) for p in HARNESS_PACKAGES}}


def _cache_key(model_identity: str, benchmark: Benchmark, k: int, params: SamplingParams, backend: str,
               backend_options: dict | None, limit: int | None, code_options: dict | None, data_path: Path,
               harness: dict) -> dict:
    # every backend option counts (dtype, max_model_len and the like change generations): a needless re-evaluation
    # costs time, a stale result would be published as new
    return json.loads(json.dumps({
        "model_files": model_identity, "benchmark": benchmark.name, "samples": k, "limit": limit,
        "sampling": {"temperature": params.temperature, "top_p": params.top_p, "max_tokens": params.max_tokens,
                     "seed": params.seed},
        "backend": backend, "backend_options": dict(backend_options or {}), "code_options": dict(code_options or {}),
        "data_sha256": content_sha256(data_path), "harness": harness}, default=str))  # as it reads back


def _read_key(key_file: Path) -> dict | None:
    """The cached key, or None (a miss) where it is absent or unreadable; the result is then evaluated again."""
    if not key_file.is_file():
        return None
    try:
        return json.loads(key_file.read_text())
    except (ValueError, UnicodeDecodeError) as error:
        print(f"mgrpo evaluate: ignoring the unreadable cache key {key_file} ({error}); evaluating again")
        return None


def _result_files(directory: Path, benchmark: str) -> tuple[Path, Path]:
    return directory / f"{benchmark}.json", directory / f"{benchmark}.samples.jsonl"


def _partial_store(cache_dir: Path, benchmark: str) -> Path:
    return cache_dir / f"{benchmark}.responses.partial.jsonl"


def _copy_files(source_dir: Path, target_dir: Path, benchmark: str) -> None:
    for source, target in zip(_result_files(source_dir, benchmark), _result_files(target_dir, benchmark)):
        with atomic_path(target) as tmp:
            shutil.copyfile(source, tmp)


def check_outside_model(model: str, folders: dict) -> None:
    """Results written into a local model folder would change the files that identify the model (the evaluation
    cache key, the training record of a base model): refused."""
    if not Path(model).is_dir():
        return
    root = Path(model).resolve()
    for what, folder in folders.items():
        if folder is not None and (Path(folder).resolve() == root or root in Path(folder).resolve().parents):
            raise ValueError(f"{what} {folder} is inside the model folder {model}: write results elsewhere")


def evaluate(model: str, benchmarks: list[str] | str, out_dir, backend: str = "hf", data_dir=None,
             temperature: float = EVAL_TEMPERATURE, top_p: float = 1.0, max_tokens: int | None = None,
             samples: int | None = None, limit: int | None = None, seed: int = 0,
             generator: Generator | None = None, backend_options: dict | None = None,
             code_options: dict | None = None, cache_dir=None) -> dict[str, dict]:
    """Evaluate ``model`` on ``benchmarks``; returns ``{benchmark: result dict}`` and writes the files.

    samples: k of avg@k for every benchmark (default: each benchmark's protocol, e.g. 8 for AIME).
    max_tokens: generation budget (default: each benchmark's). generator: an already built generator (tests,
    scripted models); without it one is loaded from ``model`` on ``backend`` with ``backend_options``.
    code_options: extra settings for the code benchmarks (e.g. workers, timeout_s, release_version).
    cache_dir: where results are kept and reused under their key (module docstring).
    """
    chosen = parse_benchmarks(benchmarks)
    if backend not in BACKENDS and generator is None:
        raise ValueError(f"unknown generation backend {backend!r}; known: {', '.join(BACKENDS)}")
    if samples is not None and samples < 1:
        raise ValueError(f"samples must be >= 1, got {samples}")
    if limit is not None and limit < 1:
        raise ValueError(f"limit must be >= 1, got {limit}")
    if code_options:
        from mgrpo.evaluation.code import check_code_options

        check_code_options(code_options)  # a misspelt option before loading any model
    data_dir = Path(data_dir) if data_dir is not None else None
    paths = {b.name: _check_data(b, data_dir, code_options) for b in chosen}  # data errors before loading any model
    # read now, not when the result is written: a bad manifest must not cost a benchmark's generations
    manifests = {b.name: read_manifest(paths[b.name].parent) for b in chosen if b.runner != "code"}
    SamplingParams(temperature=temperature, top_p=top_p, seed=seed,  # validate before loading anything
                   max_tokens=max_tokens if max_tokens is not None else 1)
    if generator is None or cache_dir is not None:
        check_model_dir(model)
    # a file in the way would otherwise fail as a FileExistsError traceback, the cache's after all generations
    check_folder(out_dir, "output folder")
    if cache_dir is not None:
        check_folder(cache_dir, "cache folder")
    check_outside_model(model, {"output folder": out_dir, "cache folder": cache_dir})
    out_dir = Path(out_dir)
    plans = {b.name: (samples or b.default_samples,
                      SamplingParams(temperature=temperature, top_p=top_p, max_tokens=max_tokens or b.max_tokens,
                                     seed=seed)) for b in chosen}
    keys, cached = {}, set()
    if cache_dir is not None:
        from mgrpo.work_stamp import files_identity

        cache_dir, model_identity = Path(cache_dir), files_identity(Path(model))
        for b in chosen:
            k, params = plans[b.name]
            keys[b.name] = _cache_key(model_identity, b, k, params, getattr(generator, "backend", backend),
                                      backend_options, limit, code_options, paths[b.name], harness_fingerprint(b.name))
            if _read_key(cache_dir / f"{b.name}.key.json") == keys[b.name] and \
                    all(p.is_file() for p in _result_files(cache_dir, b.name)):
                cached.add(b.name)
    if generator is None and any(b.name not in cached for b in chosen):
        generator = load_generator(model, backend=backend, **(backend_options or {}))
    out_dir.mkdir(parents=True, exist_ok=True)  # after the generator's own checks: a refused run leaves no folder

    results = {}
    for benchmark in chosen:
        k, params = plans[benchmark.name]
        path = paths[benchmark.name]
        if benchmark.name in cached:
            # a job killed after caching its result, before removing its responses, left them: the result is kept
            _partial_store(cache_dir, benchmark.name).unlink(missing_ok=True)
            _copy_files(cache_dir, out_dir, benchmark.name)
            results[benchmark.name] = json.loads(_result_files(out_dir, benchmark.name)[0].read_text())
            continue
        # responses kept chunk by chunk beside the cached results: a preempted job resumes its generation
        store = _partial_store(cache_dir, benchmark.name) if cache_dir is not None else None
        generating = ChunkedGenerator(generator, store, keys.get(benchmark.name))
        if benchmark.runner == "code":
            from mgrpo.evaluation.code import evaluate_code

            settings = EvalSettings(model=str(model), backend=getattr(generator, "backend", backend),
                                    sampling=params, samples=k, limit=limit, extra=dict(code_options or {}))
            result = evaluate_code(benchmark.name, generating, path, out_dir, settings)
        else:
            if benchmark.runner == "toy":
                metrics, records = run_toy(generating, path, k, params, limit)
            else:
                from mgrpo.evaluation.lm_eval_runner import run_lm_eval

                metrics, records = run_lm_eval(benchmark.name, generating, path, k, params, limit)
            result = _result(benchmark, generator, str(model), k, params, metrics, path, manifests[benchmark.name],
                             backend)
            write_jsonl(out_dir / f"{benchmark.name}.samples.jsonl", records, ensure_ascii=False, default=str)
        write_json(out_dir / f"{benchmark.name}.json", result, ensure_ascii=False)
        results[benchmark.name] = result
        if cache_dir is not None:  # key removed first, written last: a key always describes the files beside it
            cache_dir.mkdir(parents=True, exist_ok=True)
            (cache_dir / f"{benchmark.name}.key.json").unlink(missing_ok=True)
            _copy_files(out_dir, cache_dir, benchmark.name)
            write_json(cache_dir / f"{benchmark.name}.key.json", keys[benchmark.name], sort_keys=True)
            store.unlink(missing_ok=True)  # the result is kept: its responses are in its samples file
    return results
