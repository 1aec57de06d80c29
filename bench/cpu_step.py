"""CPU step time of M-GRPO vs SRT at equal G, and the wall time of one default toy run.

    python bench/cpu_step.py [--work DIR] [--steps 40] [--G 8] [--repeats 2]

Builds the toy data and base model in --work if absent (``mgrpo toy-data`` / ``mgrpo pretrain``),
trains each method for --steps optimizer steps (evaluation is excluded from ``step_seconds``),
and reports the median step time; the ratio M-GRPO / SRT is the number to compare with 1.10.
Then times one full default toy run (``mgrpo train``, all default settings) end to end.
Timings on a shared machine are noisy: repeat, and say so when you record them.
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from mgrpo.core.methods import (  # noqa: E402
    UnknownMethodError,
    default_momentum_rollouts,
    get_method,
    validate_hyperparameters,
)


def mgrpo(*args: str) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "mgrpo", *args], check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, default=Path("/tmp/mgrpo_cpu_bench"))
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--G", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--methods", nargs="+", default=["srt", "mgrpo"])
    args = parser.parse_args()
    if args.steps < 1 or args.repeats < 1:
        parser.error(f"--steps and --repeats must be >= 1 (got {args.steps}, {args.repeats})")
    try:  # what `mgrpo train` would refuse, before the data and base model are built
        for method in args.methods:
            resolved = get_method(method)
            validate_hyperparameters(resolved, args.G, default_momentum_rollouts(resolved, args.G), 0.99, 0.75)
    except (ValueError, UnknownMethodError) as err:
        parser.error(str(err))

    data, base = args.work / "data", args.work / "base_model"
    if not (data / "val.jsonl").is_file():
        mgrpo("toy-data", "--out", str(data), "--seed", "0")
    if not (base / "config.json").is_file():
        mgrpo("pretrain", "--data", str(data), "--out", str(base), "--seed", "0")

    def train(method: str, tag: str, *settings: str) -> Path:
        run = args.work / "runs" / tag
        mgrpo("train", "--backend", "cpu", "--method", method, "--base-model", str(base), "--data", str(data),
              "--out", str(run), "--work", str(args.work / "state" / f"{tag}_{time.time_ns()}"),
              "--G", str(args.G), "--T", "1.0", "--seed", "0", *[x for s in settings for x in ("--set", s)])
        return run

    step_times: dict[str, list[float]] = {m: [] for m in args.methods}
    rates: dict[str, list[float]] = {m: [] for m in args.methods}
    for repeat in range(args.repeats):
        for method in args.methods:  # interleaved so that load drifts hit every method alike
            run = train(method, f"{method}_r{repeat}", f"steps={args.steps}", f"eval_every={args.steps}",
                        f"save_every={args.steps}")
            rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
            step_times[method] += [r["step_seconds"] for r in rows if r["step"] > 0]
            rates[method] += [r["rollouts_per_s"] for r in rows if r["step"] > 0]

    print(f"# {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {platform.node()}, {platform.processor() or platform.machine()}, "
          f"G={args.G}, {args.steps} steps x {args.repeats} repeats, 1 torch thread")
    print("| method | median step s | mean step s | rollouts/s (median) | ratio vs srt |")
    print("|---|---|---|---|---|")
    reference = statistics.median(step_times["srt"]) if "srt" in step_times else None
    for method, times in step_times.items():
        median = statistics.median(times)
        ratio = f"{median / reference:.3f}" if reference else "-"
        print(f"| {method} | {median:.4f} | {statistics.mean(times):.4f} | {statistics.median(rates[method]):.0f} | {ratio} |")

    started = time.perf_counter()
    train("srt", "default_run")
    print(f"\none default toy run (srt, all defaults, `mgrpo train` end to end): {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
