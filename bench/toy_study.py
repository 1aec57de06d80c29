"""Toy study: srt, mgrpo, mgrpo_iqr and ground_truth x 3 seeds with the default toy config.

Runs everything through the ``mgrpo`` CLI (the same commands the workflow uses), then writes a
Markdown table (start / peak / final sampled validation accuracy on the val split, greedy, final entropy and
pseudo-label accuracy per run and the mean per method) to ``OUT/table.md`` and the raw
numbers to ``OUT/summary.json`` (``{"settings": the study's arguments, "results": {method: {seed: ...}}}``;
each run's summary also holds the N and m its run.json records). Nothing is tuned here: the defaults are the toy
defaults.

    python bench/toy_study.py --out results/toy_study [--seeds 0 1 2] [--G 8] [--T 1.0] [--momentum M] [--N N]

``--momentum`` and ``--N`` reach only the momentum methods (mgrpo, mgrpo_iqr; the others have no momentum model
and must have N = 0); left out, ``mgrpo train``'s own defaults apply (m = 0.99, N = G/4). Given, they are part
of those runs' folder names (``mgrpo_G8_T1.0_m0.995_N4_s0``), so one OUT can hold several settings.
"""
from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from analysis.runs import read_metrics, series, summarize_curve  # noqa: E402
from mgrpo.atomic import check_folder, write_json, write_text  # noqa: E402
from mgrpo.core.methods import get_method  # noqa: E402
from mgrpo.jsonl import DataError, read_json  # noqa: E402

METHODS = ("srt", "mgrpo", "mgrpo_iqr", "ground_truth")
LAST = 10  # steps averaged for "final" entropy / pseudo-label accuracy


def mgrpo(*args: str) -> None:
    command = [sys.executable, "-m", "mgrpo", *args]
    print("+", " ".join(command[1:]), flush=True)
    subprocess.run(command, check=True)


def summarize(metrics_path: Path) -> dict:
    run_json = metrics_path.parent / "run.json"
    spec = json.loads(run_json.read_text())["spec"] if run_json.is_file() else {}
    rows = read_metrics(metrics_path)
    curve, greedy = summarize_curve(series(rows, "val_acc")), series(rows, "val_acc_greedy")
    steps = [r for r in rows if r["step"] > 0]
    tail = steps[-LAST:]
    return {
        "start": curve.start, "peak": curve.peak, "peak_step": curve.peak_step,
        "final": curve.final, "final_step": curve.final_step,
        "start_greedy": greedy[0][1], "final_greedy": greedy[-1][1],
        "entropy_first": sum(r["entropy"] for r in steps[:LAST]) / len(steps[:LAST]),
        "entropy_final": sum(r["entropy"] for r in tail) / len(tail),
        "pseudo_label_acc_final": sum(r["pseudo_label_acc"] for r in tail) / len(tail),
        "N": spec.get("N"), "momentum": spec.get("momentum"),
    }


def header(settings: dict) -> str:
    """The line above the table: the study's shared arguments, momentum ones as given (else train's defaults)."""
    m = "train default (0.99)" if settings["momentum"] is None else settings["momentum"]
    n = "train default (G/4)" if settings["N"] is None else settings["N"]
    sets = ", ".join(settings["set"]) or "none"
    return (f"G = {settings['G']}, T = {settings['T']}, data seed {settings['data_seed']}; momentum methods: "
            f"m = {m}, N = {n}; --set: {sets}\n\n")


def table(results: dict) -> str:
    head = ("| method | seed | start | peak (step) | final | peak-final | greedy start -> final | "
            f"entropy first{LAST} -> last{LAST} | pseudo-label acc last{LAST} |")
    lines = [head, "|" + "---|" * 9]
    for method, runs in results.items():
        for seed, s in sorted(runs.items()):
            lines.append(f"| {method} | {seed} | {s['start']:.3f} | {s['peak']:.3f} ({s['peak_step']}) | "
                         f"{s['final']:.3f} | {s['peak'] - s['final']:+.3f} | "
                         f"{s['start_greedy']:.3f} -> {s['final_greedy']:.3f} | "
                         f"{s['entropy_first']:.3f} -> {s['entropy_final']:.3f} | {s['pseudo_label_acc_final']:.2f} |")
        mean = {k: sum(s[k] for s in runs.values()) / len(runs) for k in next(iter(runs.values()))
                if k not in ("N", "momentum")}
        lines.append(f"| **{method} mean** | | {mean['start']:.3f} | {mean['peak']:.3f} | {mean['final']:.3f} | "
                     f"{mean['peak'] - mean['final']:+.3f} | {mean['start_greedy']:.3f} -> "
                     f"{mean['final_greedy']:.3f} | {mean['entropy_first']:.3f} -> {mean['entropy_final']:.3f} | "
                     f"{mean['pseudo_label_acc_final']:.2f} |")
    return "\n".join(lines) + "\n"


def check_arguments(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """What `mgrpo train` would refuse, before the data and base model are built (a minute of work)."""
    from mgrpo.core.methods import UnknownMethodError, default_momentum_rollouts, validate_hyperparameters
    from mgrpo.cpu.trainer import settings_from
    from mgrpo.run_spec import check_seed, parse_assignments

    try:
        check_folder(args.out, "--out")  # a file there was a FileExistsError traceback
        settings_from(parse_assignments(args.set))
        for seed in args.seeds:
            check_seed(seed)
        if not (args.T > 0 and math.isfinite(args.T)):
            raise ValueError(f"--T must be a finite number > 0 (got {args.T})")
        for method in args.methods:
            resolved = get_method(method)
            N = args.N if resolved.momentum and args.N is not None else default_momentum_rollouts(resolved, args.G)
            m = args.momentum if resolved.momentum and args.momentum is not None else 0.99
            validate_hyperparameters(resolved, args.G, N, m, 0.75)
    except (ValueError, UnknownMethodError) as err:
        parser.error(str(err))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--methods", nargs="+", default=list(METHODS))
    parser.add_argument("--data-seed", type=int, default=0)
    parser.add_argument("--G", type=int, default=8)
    parser.add_argument("--T", type=float, default=1.0)
    parser.add_argument("--momentum", type=float, default=None,
                        help="EMA coefficient m for the momentum methods (default: mgrpo train's, 0.99)")
    parser.add_argument("--N", type=int, default=None,
                        help="momentum rollouts for the momentum methods (default: mgrpo train's, G/4)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="trainer setting override (default: none, the toy defaults)")
    args = parser.parse_args()
    check_arguments(parser, args)

    out = args.out
    data, base = out / "data", out / "base_model"
    # Runs, data and base model already in OUT are reused (a study can be extended or resumed), so OUT must have
    # been made with the same data seed and settings; G, T and the seed are in each run's name.
    shared = {"data_seed": args.data_seed, "set": sorted(args.set)}
    record = out / "study.json"
    try:
        recorded = read_json(record) if record.is_file() else shared
    except DataError as err:  # empty or cut short by hand: a JSONDecodeError traceback
        raise SystemExit(f"{err}: delete it or use another --out") from None
    if recorded != shared:
        raise SystemExit(f"{out} holds a study made with {record.read_text().strip()}, not {json.dumps(shared)}: "
                         "use another --out")
    out.mkdir(parents=True, exist_ok=True)
    write_json(record, shared, indent=None)
    started = time.time()
    if not (data / "val.jsonl").is_file():
        mgrpo("toy-data", "--out", str(data), "--seed", str(args.data_seed))
    if not (base / "config.json").is_file():
        mgrpo("pretrain", "--data", str(data), "--out", str(base), "--seed", str(args.data_seed))
    results: dict = {}
    for method in args.methods:
        for seed in args.seeds:
            momentum = []
            if get_method(method).momentum:  # the others have no momentum model (N must be 0)
                momentum += ["--momentum", str(args.momentum)] if args.momentum is not None else []
                momentum += ["--N", str(args.N)] if args.N is not None else []
            tag = "".join(f"_{flag.lstrip('-')[0]}{value}" for flag, value in zip(momentum[::2], momentum[1::2]))
            run = out / "runs" / f"{method}_G{args.G}_T{args.T}{tag}_s{seed}"
            if not (run / "metrics.jsonl").is_file():
                extra = momentum + [x for kv in args.set for x in ("--set", kv)]
                mgrpo("train", "--backend", "cpu", "--method", method, "--base-model", str(base),
                      "--data", str(data), "--out", str(run), "--work", str(out / "work" / run.name),
                      "--G", str(args.G), "--T", str(args.T), "--seed", str(seed), *extra)
            results.setdefault(method, {})[seed] = summarize(run / "metrics.jsonl")
    settings = {**shared, "G": args.G, "T": args.T, "momentum": args.momentum, "N": args.N,
                "seeds": args.seeds, "methods": args.methods}
    text = header(settings) + table(results)
    write_text(out / "table.md", text)
    write_json(out / "summary.json", {"settings": settings, "results": results})
    print(text)
    print(f"total wall time {time.time() - started:.0f}s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
