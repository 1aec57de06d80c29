"""Subcommands of the verl backend: ``mgrpo prepare-math``, ``mgrpo verl-prepare-data`` and ``mgrpo verl-convert``."""
from __future__ import annotations

from pathlib import Path


def add_subcommands(subparsers) -> None:
    p = subparsers.add_parser("prepare-math", help="download the MATH train/test splits (needs Hub access) for "
                                                   "`mgrpo verl-prepare-data`")
    p.add_argument("--out", required=True, type=Path, help="output directory (train.jsonl, test.jsonl, MANIFEST.json)")
    p.set_defaults(handler=_download_math)

    p = subparsers.add_parser("verl-prepare-data",
                              help="MATH train/test splits -> verl parquet files (labels hidden from the reward)")
    p.add_argument("--source", required=True, type=Path,
                   help="directory with train.{jsonl,json,parquet} and test.{...} (columns problem, solution)")
    p.add_argument("--out", required=True, type=Path, help="output directory (train.parquet, test.parquet)")
    p.add_argument("--test-limit", type=int, default=0, help="keep only the first N test rows (0 = all)")
    p.add_argument("--exclude-problems", nargs="*", type=Path, default=[], metavar="FILE",
                   help="benchmark files (column problem) whose problems leave both splits: MATH-500 is part of "
                        "MATH's test split, the validation set that picks best/")
    p.set_defaults(handler=_prepare)

    p = subparsers.add_parser("verl-convert", help="a verl FSDP actor checkpoint -> an HF model directory")
    p.add_argument("--checkpoint", required=True, type=Path,
                   help="global_step_N directory (or its actor/ subdirectory)")
    p.add_argument("--out", required=True, type=Path, help="target HF model directory")
    p.set_defaults(handler=_convert)


def _download_math(args) -> int:
    from mgrpo.evaluation.datasets import MATH_SOURCES, download_source

    for source in MATH_SOURCES.values():
        entry = download_source(source, args.out)
        print(f"{source.benchmark}: {entry['rows']} rows at {source.hf_id}@{entry['revision']} -> {entry['path']}")
    return 0


def _prepare(args) -> int:
    from mgrpo.verl_backend.data import prepare

    if args.test_limit < 0:
        raise ValueError(f"--test-limit must be >= 0 (got {args.test_limit})")
    written = prepare(args.source, args.out, test_limit=args.test_limit or None, exclude=args.exclude_problems)
    for split, path in written.items():
        print(f"{split}: {path}")
    return 0


def _convert(args) -> int:
    from mgrpo.verl_backend.checkpoints import convert_to_hf

    actor = args.checkpoint / "actor" if (args.checkpoint / "actor").is_dir() else args.checkpoint
    print(convert_to_hf(actor, args.out))
    return 0
