"""``mgrpo evaluate`` and ``mgrpo prepare-data`` (added to the ``mgrpo`` command line by mgrpo.cli)."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from mgrpo.evaluation.benchmarks import EVAL_TEMPERATURE, known_benchmarks


def add_subcommands(subparsers) -> None:
    known = ", ".join(known_benchmarks())
    p = subparsers.add_parser("evaluate", help="evaluate a checkpoint on benchmarks (same protocol for every method)",
                              description=f"Benchmarks: {known}.")
    p.add_argument("--model", required=True, type=Path, help="HF-format model directory")
    p.add_argument("--benchmarks", required=True, help=f"comma-separated, from: {known}")
    p.add_argument("--out", required=True, type=Path, help="writes <benchmark>.json and <benchmark>.samples.jsonl")
    p.add_argument("--backend", choices=("hf", "vllm"), default="hf")
    p.add_argument("--data-dir", type=Path, default=None, help="folder written by `mgrpo prepare-data` "
                   "(for toy: the toy data folder with test.jsonl)")
    p.add_argument("--temperature", type=float, default=EVAL_TEMPERATURE)
    p.add_argument("--top-p", type=float, default=1.0)
    p.add_argument("--max-tokens", type=int, default=None, help="default: per benchmark (toy 16, others 3072)")
    p.add_argument("--samples", type=int, default=None,
                   help="samples per problem (k of avg@k); default: 8 for aime24/aime25/gpqa_diamond, else 1")
    p.add_argument("--limit", type=int, default=None, help="first N problems only (smoke tests)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--cache", type=Path, default=None,
                   help="keep results here and reuse those whose model files, data and settings are unchanged")
    g = p.add_argument_group("backend options")
    g.add_argument("--device", default="cpu", help="hf: torch device")
    g.add_argument("--batch-size", type=int, default=16, help="hf: prompts per generate call")
    g.add_argument("--tensor-parallel-size", type=int, default=1, help="vllm: GPUs per engine")
    g.add_argument("--data-parallel-size", type=int, default=1, help="vllm: engines (prompts split between them)")
    g.add_argument("--gpu-memory-utilization", type=float, default=0.9, help="vllm")
    g.add_argument("--max-model-len", type=int, default=None, help="vllm")
    p.add_argument("--code-option", action="append", default=[], metavar="KEY=VALUE",
                   help="setting for the code benchmarks (e.g. workers=8, timeout_s=6, release_version=release_v5)")
    p.add_argument("--allow-weak-sandbox", action="store_true",
                   help="code benchmarks: run model-written code even where the sandbox gets no namespaces (rlimits "
                   "only: the code could read this user's files and use the network) or no seccomp filter (no "
                   "libseccomp); recorded in the results")
    p.set_defaults(handler=_evaluate)

    subparsers.add_parser("benchmarks", help="list the registered benchmarks (toy, task files, code)").set_defaults(
        handler=_benchmarks)

    q = subparsers.add_parser("prepare-data", help="download benchmark data from its public source (needs Hub access; "
                              "HF_TOKEN for gated GPQA)")
    q.add_argument("--benchmarks", required=True, help="comma-separated benchmark names")
    q.add_argument("--out", required=True, type=Path, help="data folder (pass it as --data-dir to evaluate)")
    q.add_argument("--keep-present", action="store_true",
                   help="skip a benchmark whose files are there with the sha256 MANIFEST.json records for them")
    q.set_defaults(handler=_prepare_data)


def _benchmarks(args) -> int:
    from mgrpo.evaluation.benchmarks import BENCHMARKS

    for b in BENCHMARKS.values():
        kind = b.runner + (f" ({b.doc_format})" if b.doc_format else "")
        data = b.source.filename if b.source else ""
        print(f"{b.name:14s} {kind:18s} k={b.default_samples:<3d} {data:20s} {b.description}")
    return 0


def backend_options(args: argparse.Namespace) -> dict:
    if args.backend == "hf":
        return {"device": args.device, "batch_size": args.batch_size}
    return {"tensor_parallel_size": args.tensor_parallel_size, "data_parallel_size": args.data_parallel_size,
            "gpu_memory_utilization": args.gpu_memory_utilization, "max_model_len": args.max_model_len}


def parse_options(assignments: list[str]) -> dict:
    """``["workers=8", "release_version=release_v5"]`` -> dict; values parsed as JSON when they are JSON."""
    options = {}
    for item in assignments:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--code-option expects KEY=VALUE, got {item!r}")
        try:
            options[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            options[key.strip()] = value
    return options


def _code_options(args: argparse.Namespace) -> dict:
    options = parse_options(args.code_option)
    if getattr(args, "allow_weak_sandbox", False):
        options["allow_weak_sandbox"] = True
    return options


def _evaluate(args: argparse.Namespace) -> int:
    from contextlib import nullcontext

    from mgrpo.atomic import check_folder
    from mgrpo.evaluation.generation import BackendNotInstalled
    from mgrpo.evaluation.runner import check_outside_model, evaluate
    from mgrpo.work_lock import WorkDirInUse, work_lock

    check_outside_model(str(args.model), {"output folder": args.out, "cache folder": args.cache})  # before the lock
    if args.cache is not None:
        check_folder(args.cache, "cache folder")  # before the lock makes it a folder (or fails on the file)
    try:
        # one evaluation per cache folder: a restarted Snakemake controller resubmits a job that still runs, and
        # the two would generate the same responses twice into one partial store
        with work_lock(args.cache, holder="evaluation") if args.cache is not None else nullcontext():
            results = evaluate(str(args.model), args.benchmarks, args.out, backend=args.backend,
                               data_dir=args.data_dir, temperature=args.temperature, top_p=args.top_p,
                               max_tokens=args.max_tokens, samples=args.samples, limit=args.limit, seed=args.seed,
                               backend_options=backend_options(args), code_options=_code_options(args),
                               cache_dir=args.cache)
    except WorkDirInUse as err:
        raise SystemExit(f"mgrpo evaluate: {err}") from None
    except BackendNotInstalled as err:  # one line, as for any other bad input (mgrpo.cli.main)
        print(f"mgrpo evaluate: error: {err}", file=sys.stderr)
        return 2
    for name, result in results.items():
        print(f"{name:14s} {result['metric']:7s} {result['value']:.4f}  (n={result['n_problems']})")
    return 0


def present_entry(benchmark: str, out: Path) -> dict | None:
    """The MANIFEST.json entry of ``benchmark`` when its files in ``out`` are the ones recorded (sha256), else None."""
    from mgrpo.evaluation.datasets import file_sha256, read_manifest

    entry = read_manifest(out).get(benchmark)
    if not entry or "path" not in entry:
        return None
    path = Path(out) / entry["path"]
    files = {path: entry["sha256"]} if "sha256" in entry else \
        {path / name: digest for name, digest in (entry.get("files") or {}).items()}
    intact = bool(files) and all(p.is_file() and file_sha256(p) == digest for p, digest in files.items())
    return entry if intact else None


def prepare_data(benchmarks: str | list[str], out: Path, keep_present: bool = False) -> dict[str, dict]:
    """Download each benchmark into ``out``; code benchmarks are delegated to mgrpo.evaluation.code.
    ``keep_present``: a benchmark whose recorded files are intact is not downloaded again (adding one benchmark
    to a finished grid fetches that one only)."""
    from mgrpo.evaluation.benchmarks import parse_benchmarks
    from mgrpo.evaluation.datasets import download

    chosen = parse_benchmarks(benchmarks)
    for b in chosen:
        if b.runner == "toy":
            raise ValueError("toy data is generated, not downloaded: use `mgrpo toy-data --out DIR --seed 0`")
    written = {}
    for b in chosen:
        if keep_present and (entry := present_entry(b.name, out)) is not None:
            written[b.name] = entry
            continue
        if b.runner == "code":
            from mgrpo.evaluation import code

            written[b.name] = code.prepare_data(b.name, Path(out))
        else:
            written[b.name] = download(b.name, Path(out))
    return written


def _prepare_data(args: argparse.Namespace) -> int:
    for name, entry in prepare_data(args.benchmarks, args.out, keep_present=args.keep_present).items():
        print(f"{name}: {json.dumps(entry, default=str)}")
    return 0
