"""``mgrpo``: the command line that the Snakemake rules call. Each part adds its own subcommands."""
from __future__ import annotations

import argparse
import contextlib
import importlib
import io
import os
import sys
from pathlib import Path

from mgrpo.core.methods import UnknownMethodError
from mgrpo.run_spec import BACKENDS, RunSpec, parse_assignments
from mgrpo.work_lock import WorkDirInUse, work_lock
from mgrpo.work_stamp import check_work_dir

# Modules that contribute subcommands through add_subcommands(subparsers); each keeps heavy imports lazy.
SUBCOMMAND_MODULES = ("mgrpo.cpu.cli", "mgrpo.evaluation.cli", "mgrpo.verl_backend.cli")
TRAINERS = {"cpu": "mgrpo.cpu.trainer", "verl": "mgrpo.verl_backend.trainer"}


def _add_train(subparsers) -> None:
    p = subparsers.add_parser("train", help="train one (method, G, T, seed) run on a backend")
    p.add_argument("--backend", choices=BACKENDS, default="cpu")
    p.add_argument("--method", required=True, help="a registered method (see `mgrpo methods`)")
    p.add_argument("--base-model", required=True, type=Path, help="HF-format model directory")
    p.add_argument("--data", required=True, type=Path, help="prepared data directory")
    p.add_argument("--out", required=True, type=Path, help="run directory, written at the end")
    p.add_argument("--work", required=True, type=Path, help="resumable state (checkpoints); resumed if present")
    p.add_argument("--G", required=True, type=int, help="rollouts per prompt")
    p.add_argument("--T", required=True, type=float, help="training (sampling) temperature")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--N", type=int, default=None, help="momentum rollouts (default G/4 for momentum methods)")
    p.add_argument("--momentum", type=float, default=0.99, help="EMA coefficient m")
    p.add_argument("--iqr-k", type=float, default=0.75, help="IQR filter k")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="backend setting override")
    p.add_argument("--restart-on-change", action="store_true",
                   help="if --work was started with other arguments or other base-model/data files, move its "
                        "contents to WORK/superseded/ and start afresh (default: refuse)")
    p.set_defaults(handler=_train)


def train_spec(args) -> RunSpec:
    """The RunSpec of parsed ``mgrpo train`` arguments."""
    return RunSpec.create(
        backend=args.backend, method=args.method, G=args.G, N=args.N, base_model=args.base_model, data=args.data,
        out=args.out, work=args.work, temperature=args.T, seed=args.seed, momentum=args.momentum,
        iqr_k=args.iqr_k, settings=parse_assignments(args.set),
    )


def _train(args) -> int:
    spec = train_spec(args)
    try:
        trainer = importlib.import_module(TRAINERS[spec.backend])
    except ImportError as err:
        raise SystemExit(f"mgrpo: the {spec.backend} backend is not installed ({err}); "
                         f"install it with: pip install -e '.[{spec.backend}]'") from None
    trainer.validate_spec(spec)  # a bad input fails before the work folder is created or stamped
    try:
        with work_lock(spec.work):  # one trainer per work folder (a restarted controller resubmits)
            check_work_dir(spec, trainer.resolved_settings(spec), restart=args.restart_on_change,
                           log=lambda line: print(line, file=sys.stderr))
            trainer.train(spec)
    except WorkDirInUse as err:
        raise SystemExit(f"mgrpo train: {err}") from None
    return 0


def _methods(args) -> int:
    from mgrpo.core.methods import get_method, known_methods

    for name in known_methods():
        m = get_method(name)
        parts = [f"reward={m.reward}"] + ([f"vote>={m.vote_threshold:g}"] if m.vote_threshold else []) + (
            ["momentum"] if m.momentum else []) + (
            [("iqr" if m.filter_scope == "vote_and_loss" else f"iqr({m.filter_scope}-only)")] if m.entropy_filter else [])
        print(f"{name:14s} {' '.join(parts):40s} {m.description}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mgrpo", description=__doc__)
    subparsers = parser.add_subparsers(dest="command", required=True)
    _add_train(subparsers)
    subparsers.add_parser("methods", help="list the registered methods").set_defaults(handler=_methods)
    for name in SUBCOMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as err:
            if err.name and name.startswith(err.name):  # the part itself is absent from this install
                continue
            raise
        module.add_subcommands(subparsers)
    return parser


def argument_error(argv: list[str]) -> str | None:
    """Why ``mgrpo ARGV`` would be refused before doing any work (argparse's message, or the subcommand's own
    ``check`` of its values), or None. The workflow asks this of every flag list it builds from the config, so that
    a bad option stops ``snakemake -n`` rather than the job that runs the command."""
    stderr = io.StringIO()
    try:
        with contextlib.redirect_stderr(stderr):
            args = build_parser().parse_args(argv)
    except SystemExit:
        lines = stderr.getvalue().strip().splitlines()
        return lines[-1] if lines else f"mgrpo {' '.join(argv)}: refused"
    check = getattr(args, "check", None)
    try:
        if check is not None:
            check(args)
    except ValueError as err:
        return f"mgrpo {args.command}: error: {err}"
    return None


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args) or 0
    except (ValueError, FileNotFoundError, UnknownMethodError, FloatingPointError) as err:
        # Bad input, or training that diverged (its message names the step and the last good checkpoint): one
        # clear line naming what is wrong; MGRPO_DEBUG=1 shows the traceback.
        if os.environ.get("MGRPO_DEBUG"):
            raise
        print(f"mgrpo {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
