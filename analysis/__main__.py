"""``python -m analysis {table,figure,report}``: what the workflow's analysis rules run; ``paper-table`` is by hand.

    python -m analysis table --job JSON --paper analysis/paper_numbers.yaml --out results/tables
    python -m analysis figure --job JSON --out results/figures
    python -m analysis paper-table --paper analysis/paper_numbers.yaml --name table2
    python -m analysis report --out results/report.md --tables T.md ... --figures F.png ...

JOB is the JSON that ``analysis_job`` in workflow/rules/common.smk builds (kind, name, spec, results, runs,
evaluations, benchmarks, collapse).
"""
from __future__ import annotations

import argparse
import json
import os
import re
import sys
from pathlib import Path

from mgrpo.atomic import write_text
from mgrpo.jsonl import is_finite_number


def _job(text: str) -> dict:
    try:
        job = json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"--job is not JSON ({err.msg})") from None
    # the workflow's analysis_job builds it; one written by hand with another shape was a KeyError or TypeError
    # traceback, or (collapse.relative "false") a rule other than the one asked for
    if not isinstance(job, dict):
        raise ValueError(f"--job is not a JSON object (got {type(job).__name__})")
    for key in ("name", "spec", "results", "runs"):
        if key not in job:
            raise ValueError(f"--job lacks {key!r}")
    if not (isinstance(job["name"], str) and re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", job["name"])):
        raise ValueError(f"--job name = {job['name']!r}: expected a table or figure name (letters, digits, _ . -)")
    for key, kind in (("spec", dict), ("results", str), ("runs", list), ("collapse", (dict, type(None)))):
        if key in job and not isinstance(job[key], kind):
            raise ValueError(f"--job {key} = {job[key]!r}: expected {_JOB_TYPES[key]}")
    for index, run in enumerate(job["runs"]):
        if not (isinstance(run, dict) and all(_is_a(run.get(k), kind) for k, kind in _RUN_FIELDS.items())):
            raise ValueError(f"--job runs[{index}] = {run!r}: expected {{model: text, method: text, G: integer, "
                             f"T: number, seed: integer}}")
    collapse = job.get("collapse") or {}
    if not set(collapse) <= {"min_drop", "relative"} or not _is_a(collapse.get("min_drop", 0.1), float) or \
            not isinstance(collapse.get("relative", False), bool):
        raise ValueError(f"--job collapse = {collapse!r}: expected {{min_drop: number, relative: true or false}}")
    return job


_JOB_TYPES = {"spec": "an object", "results": "a folder name", "runs": "a list", "collapse": "an object or null"}
_RUN_FIELDS = {"model": str, "method": str, "G": int, "T": float, "seed": int}


def _is_a(value, kind) -> bool:
    """`value` is of `kind`: an int for int (not a boolean), any finite number for float, a string for str."""
    if kind is str:
        return isinstance(value, str)
    return is_finite_number(value) and (isinstance(value, int) or kind is not int)


def _table(args) -> int:
    from .tables import build_table, load_paper_numbers

    job = _job(args.job)
    table = build_table(job, load_paper_numbers(args.paper))
    out = Path(args.out)
    write_text(out / f"{job['name']}.md", table.markdown())
    write_text(out / f"{job['name']}.tex", table.latex())
    write_text(out / f"{job['name']}.csv", table.csv())
    print(table.markdown())
    if table.missing:
        print(f"missing: {', '.join(table.missing)}", file=sys.stderr)
    return 0


def _figure(args) -> int:
    from .figures import plot_curves

    job = _job(args.job)
    missing = plot_curves(job, Path(args.out))
    print(f"wrote {args.out}/{job['name']}.png and .pdf")
    if missing:
        print(f"missing: {', '.join(missing)}", file=sys.stderr)
    return 0


def _paper_table(args) -> int:
    from .tables import load_paper_numbers, render_paper_table

    print(render_paper_table(load_paper_numbers(args.paper), args.name).markdown(), end="")
    return 0


def _input_file(option: str, path: str) -> Path:
    """A file that the report reads or links, refused (naming the option and the path) when it is not one."""
    if not Path(path).is_file():
        raise ValueError(f"{option} {path}: {'a folder, not a file' if Path(path).is_dir() else 'no such file'}")
    return Path(path)


def _report(args) -> int:
    out = Path(args.out)
    if out.is_dir():
        raise ValueError(f"--out {out}: a folder, not a file")
    parts = ["# mgrpo-bench results", ""]
    for table in args.tables:
        try:
            text = _input_file("--tables", table).read_text(encoding="utf-8")
        except UnicodeDecodeError as err:
            raise ValueError(f"--tables {table}: not UTF-8 text ({err.reason} at byte {err.start})") from None
        parts += [f"## {Path(table).stem}", "", text.rstrip(), ""]
    for figure in args.figures:
        _input_file("--figures", figure)
        _input_file(f"--figures {figure}: the PDF linked beside it,", os.path.splitext(figure)[0] + ".pdf")
        relative = os.path.relpath(figure, out.parent)
        pdf = os.path.splitext(relative)[0] + ".pdf"
        parts += [f"## {Path(figure).stem}", "", f"![{Path(figure).stem}]({relative}) ([PDF]({pdf}))", ""]
    write_text(out, "\n".join(parts))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m analysis", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("table", help="one table as Markdown, LaTeX and CSV")
    p.add_argument("--job", required=True)
    p.add_argument("--paper", default="analysis/paper_numbers.yaml")
    p.add_argument("--out", required=True)
    p.set_defaults(handler=_table)
    p = sub.add_parser("figure", help="one figure as PNG and PDF")
    p.add_argument("--job", required=True)
    p.add_argument("--out", required=True)
    p.set_defaults(handler=_figure)
    p = sub.add_parser("paper-table", help="print the paper's own numbers for one table (Markdown)")
    p.add_argument("--paper", default="analysis/paper_numbers.yaml")
    p.add_argument("--name", required=True)
    p.set_defaults(handler=_paper_table)
    p = sub.add_parser("report", help="one Markdown page with every table and figure")
    p.add_argument("--out", required=True)
    p.add_argument("--tables", nargs="*", default=[])
    p.add_argument("--figures", nargs="*", default=[])
    p.set_defaults(handler=_report)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except (ValueError, FileNotFoundError) as err:
        print(f"analysis {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
