"""Tables 1-3 in the paper's layout and the toy summary, as Markdown, LaTeX and CSV.

Our numbers come only from the local run files; the paper's come only from analysis/paper_numbers.yaml and
appear as their own rows, labelled "paper", never mixed into ours. Runs that a table needs but that are
absent are shown as "missing" and listed under the table.
"""
from __future__ import annotations

import csv
import io
import math
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple, Optional, Sequence

import yaml

from mgrpo.evaluation.benchmarks import BENCHMARKS

from . import plan
from mgrpo.jsonl import DataError

from .runs import (CollapseRule, CurveSummary, _is_number, read_evaluation, read_metrics, series,
                   summarize_curve)

MISSING = "missing"
NOT_EVALUATED = "–"
COLLAPSE_MARK = "↓"
# One pass, character by character, so that no replacement is itself escaped again. < and > print as ¡ and ¿ in
# LaTeX's default (OT1) font encoding, and the notes say "step > 0".
LATEX_ESCAPES = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "_": r"\_", "#": r"\#", "$": r"\$",
                 "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
                 "<": r"\textless{}", ">": r"\textgreater{}", COLLAPSE_MARK: r"$\downarrow$", "±": r"$\pm$"}


def benchmark_label(name: str) -> str:
    """The benchmark's label in the registry (its task file's ``metadata.label``), else its name."""
    return BENCHMARKS[name].title if name in BENCHMARKS else name


@dataclass
class Table:
    title: str
    columns: list[str]
    rows: list[list[str]]
    notes: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)

    def markdown(self) -> str:
        lines = [f"**{self.title}**", "", "| " + " | ".join(self.columns) + " |",
                 "|" + "|".join("---" for _ in self.columns) + "|"]
        lines += ["| " + " | ".join(row) + " |" for row in self.rows]
        lines += [""] + [f"- {note}" for note in self.notes]
        if self.missing:
            lines += [f"- missing ({len(self.missing)}): {', '.join(self.missing)}"]
        return "\n".join(lines).rstrip() + "\n"

    def latex(self) -> str:
        def esc(text: str) -> str:
            return "".join(LATEX_ESCAPES.get(char, char) for char in text)

        lines = [r"\begin{table}[t]", r"\centering", rf"\caption{{{esc(self.title)}}}",
                 r"\begin{tabular}{" + "l" * len(self.columns) + "}", r"\toprule",
                 " & ".join(esc(c) for c in self.columns) + r" \\", r"\midrule"]
        lines += [" & ".join(esc(c) for c in row) + r" \\" for row in self.rows]
        lines += [r"\bottomrule", r"\end{tabular}"]
        notes = self.notes + ([f"missing: {', '.join(self.missing)}"] if self.missing else [])
        lines += [rf"\par\footnotesize {esc(note)}" for note in notes]
        lines += [r"\end{table}"]
        return "\n".join(lines) + "\n"

    def csv(self) -> str:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(self.columns)
        writer.writerows(self.rows)
        return buffer.getvalue()


# ---------------------------------------------------------------------------------------------------------------
# Loading what exists


@dataclass
class RunData:
    run: plan.Run
    curve: Optional[CurveSummary]  # None: the run's metrics are missing
    rows: list[dict]


class Results:
    """The local run files of one results directory, read lazily."""

    def __init__(self, results_dir: str, rule: CollapseRule):
        self.results_dir = str(results_dir)
        self.rule = rule
        self._runs: dict[plan.Run, RunData] = {}

    def run(self, run: plan.Run) -> RunData:
        if run not in self._runs:
            path = Path(plan.run_dir(self.results_dir, run)) / "metrics.jsonl"
            if not path.is_file():
                self._runs[run] = RunData(run, None, [])
            else:
                rows = read_metrics(path)
                points = series(rows, "val_acc")
                if not points:  # both trainers validate at step 0: a finished run without val_acc is broken
                    raise DataError(f"{path}: no val_acc in any row (the run's validation was not logged)")
                self._runs[run] = RunData(run, summarize_curve(points, self.rule), rows)
        return self._runs[run]

    def evaluation(self, run: Optional[plan.Run], checkpoint: str, benchmark: str, model: str = "") -> Optional[Score]:
        path = Path(plan.eval_dir(self.results_dir, run, checkpoint, model)) / f"{benchmark}.json"
        if not path.is_file():
            return None
        data = read_evaluation(path)
        return Score(float(data["value"]), None if data.get("stderr") is None else float(data["stderr"]))


def percent(value: Optional[float]) -> str:
    return MISSING if value is None else f"{100 * value:.2f}"


def paper_value(value: Optional[float]) -> str:
    return "–" if value is None else f"{float(value):.2f}"


def mean_sd(values: Sequence[float], seeds: Optional[int] = None, stderr: Optional[float] = None) -> str:
    """Mean over seeds in %, followed by ± the sample standard deviation when two or more seeds are present, or,
    for a single value, by its standard error over the benchmark's problems when given ("(s.e. x)"); with `seeds`
    (the runs the cell stands for), "(n/seeds)" when only n of them have a value."""
    if not values:
        return MISSING
    text = percent(statistics.fmean(values))
    if len(values) > 1:
        text = f"{text} ± {100 * statistics.stdev(values):.2f}"
    elif stderr is not None:
        text = f"{text} (s.e. {100 * stderr:.2f})"
    return f"{text} ({len(values)}/{seeds})" if seeds is not None and len(values) < seeds else text


class Score(NamedTuple):
    """One evaluation: its accuracy and the standard error over the benchmark's problems (None where not given)."""
    value: float
    stderr: Optional[float]


def scores_cell(scores: Sequence[Score], seeds: Optional[int] = None) -> str:
    """A benchmark cell: ``mean_sd`` of the scores; a lone score carries its standard error, since with one seed
    (the paper's grid) it is the only measure of how much the number could move."""
    return mean_sd([s.value for s in scores], seeds, scores[0].stderr if len(scores) == 1 else None)


SEED_NOTE = ("accuracies in %, mean ± sample standard deviation over seeds (no ± with one seed); "
             "(s.e. x): a benchmark value from one seed, with the standard error of its mean over the benchmark's "
             "problems; (n/m): only n of the row's m seeds have this value, the others are listed as missing")


def load_paper_numbers(path: Path) -> dict:
    """analysis/paper_numbers.yaml: tables.<name> = {columns: [...], rows: [{label, values: {column: number or
    null}}], ...}; anything else is a one-line error naming the file (the workflow checks it before any job)."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as err:
        raise ValueError(f"{path}: cannot be read ({getattr(err, 'strerror', None) or err.reason})") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise ValueError(f"{where}: not YAML ({getattr(err, 'problem', None) or str(err).splitlines()[0]})") from None
    if not isinstance(data, dict) or not isinstance(data.get("tables"), dict):
        raise ValueError(f"{path}: expected a mapping with a 'tables' mapping")
    for name, table in data["tables"].items():
        where = f"{path}: tables.{name}"
        if not isinstance(table, dict):
            raise ValueError(f"{where}: expected a mapping (title, columns, rows, ...), got {table!r}")
        for key in ("columns", "rows"):
            if not isinstance(table.get(key, []), list):
                raise ValueError(f"{where}.{key}: expected a list, got {table[key]!r}")
        for index, row in enumerate(table.get("rows", [])):
            if not (isinstance(row, dict) and "label" in row and isinstance(row.get("values"), dict)):
                raise ValueError(f"{where}.rows[{index}]: expected {{label: ..., values: {{column: number}}}}, "
                                 f"got {row!r}")
            for column, value in row["values"].items():
                if value is not None and not (_is_number(value) and math.isfinite(value)):
                    raise ValueError(f"{where}.rows[{index}].values.{column} = {value!r}: expected a number or null")
    return data


def paper_table(paper: dict, name: str) -> Optional[dict]:
    table = (paper.get("tables") or {}).get(name)
    if not table or not table.get("rows"):
        return None
    return table


def paper_status_note(paper: dict, name: str) -> str:
    table = (paper.get("tables") or {}).get(name) or {}
    status = table.get("status", "not transcribed")
    note = f"rows 'paper': {paper.get('paper', 'the paper')}, {name}: {status} (analysis/paper_numbers.yaml)"
    suspect = table.get("suspect") or []
    return note + (f"; suspect paper cells: {'; '.join(suspect)}" if suspect else "")


def paper_notes(paper: dict, name: str, benchmarks: Sequence[str]) -> list[str]:
    """The paper table's provenance note, for a table on benchmarks the paper reports (none for the toy)."""
    reported = {b for table in (paper.get("tables") or {}).values() for b in (table or {}).get("columns") or []}
    return [paper_status_note(paper, name)] if reported & set(benchmarks) else []


def paper_rows_for(paper: dict, name: str, benchmarks: Sequence[str]) -> list[dict]:
    """The paper's rows for a table, or none when it reports none of the table's benchmarks (e.g. the toy)."""
    table = paper_table(paper, name) or {}
    if not set(benchmarks) & set(table.get("columns", [])):
        return []
    return table.get("rows", [])


def render_paper_table(paper: dict, name: str) -> Table:
    """The paper's own numbers for one table, in its layout (rows x benchmark columns)."""
    table = paper_table(paper, name)
    if table is None:
        raise ValueError(f"paper numbers: table {name!r} has no transcribed rows "
                         f"({((paper.get('tables') or {}).get(name) or {}).get('status', 'absent')})")
    columns = [table.get("row_header", "Method")] + [benchmark_label(b) for b in table["columns"]]
    rows = [[str(row["label"])] + [paper_value(row["values"].get(b)) for b in table["columns"]]
            for row in table["rows"]]
    return Table(f"{table.get('title', name)} (paper)", columns, rows, notes=[paper_status_note(paper, name)])


# ---------------------------------------------------------------------------------------------------------------
# Table kinds


def _collapse_note(rule: CollapseRule) -> str:
    unit = f"{100 * rule.min_drop:.0f}% of its peak" if rule.relative else f"{100 * rule.min_drop:.1f} points"
    return (f"{COLLAPSE_MARK}: collapsed (final validation accuracy more than {unit} below its peak, step 0 included); "
            "Best = the highest validation accuracy among the trained steps (step > 0, ties: earliest): best/")


def _mark(label: str, curves: Sequence[Optional[CurveSummary]]) -> str:
    return f"{label} {COLLAPSE_MARK}" if any(c is not None and c.collapsed for c in curves) else label


def summary_table(job: dict, results: Results, paper: dict) -> Table:
    """One row per run: validation accuracy at the start, at the best and final steps, collapse, evaluations."""
    benchmarks = job["spec"].get("benchmarks", [])
    checkpoints = sorted({c for _, c in job.get("evaluations", [])}) or list(plan.CHECKPOINTS)
    # (run, checkpoint) pairs the workflow evaluates; a curves-only run (checkpoints: []) is "–", not missing
    planned = {(run_id, c) for run_id, c in job["evaluations"]} if "evaluations" in job else None
    columns = ["Model", "Method", "G", "T", "Seed", "Start", "Best (step)", "Final (step)", "Collapse"]
    columns += [f"{benchmark_label(b)} {c}" for b in benchmarks for c in checkpoints]
    rows, missing = [], []
    for run in plan.runs_of_job(job):
        data = results.run(run)
        head = [run.model, run.method, str(run.G), plan.format_temperature(run.T), str(run.seed)]
        if data.curve is None:
            missing.append(run.run_id)
            rows.append(head + [MISSING] * (len(columns) - len(head)))
            continue
        c = data.curve
        collapse = f"yes (step {c.collapse_step})" if c.collapsed else "no"
        cells = [percent(c.start), f"{percent(c.best)} ({c.best_step})",
                 f"{percent(c.final)} ({c.final_step})" + (f" {COLLAPSE_MARK}" if c.collapsed else ""), collapse]
        for b in benchmarks:
            for ck in checkpoints:
                if planned is not None and (run.run_id, ck) not in planned:
                    cells.append(NOT_EVALUATED)
                    continue
                score = results.evaluation(run, ck, b)
                if score is None:
                    missing.append(f"{run.run_id}/{ck}/{b}")
                cells.append(scores_cell([] if score is None else [score]))
        rows.append(head + cells)
    notes = ["accuracies in %; validation accuracy from metrics.jsonl, benchmark columns from mgrpo evaluate, with "
             "(s.e. x) the standard error of the mean over the benchmark's problems",
             _collapse_note(results.rule)]
    if planned is not None and any(NOT_EVALUATED in row[9:] for row in rows):
        notes.append(f"{NOT_EVALUATED}: checkpoint not evaluated by this configuration (e.g. checkpoints: [])")
    return Table(job["spec"].get("title", "Summary of every run"), columns, rows, notes, missing)


def grid_paper_rows(paper: dict, name: str, benchmarks: Sequence[str]) -> dict:
    """The paper's rows of a grid table (Table 1) by (G, T). Each row gives its cell as `G` and `T` and its values
    under the keys the table shows: val_best, val_final and <benchmark>_best / _final. A row without G and T, or a
    value under another key, would crash the table or drop the paper's number from it without a word: an error."""
    known = {"val_best", "val_final"} | {f"{b}_{ck}" for b in [*BENCHMARKS, *benchmarks] for ck in ("best", "final")}
    rows = {}
    for index, row in enumerate((paper_table(paper, name) or {}).get("rows", [])):
        where = f"paper numbers: tables.{name}.rows[{index}] ({row['label']})"
        if not all(_is_number(row.get(key)) for key in ("G", "T")):
            raise ValueError(f"{where}: a grid table's paper row needs numeric G and T keys (its cell), "
                             f"got G = {row.get('G')!r}, T = {row.get('T')!r}")
        unknown = sorted(set(row["values"]) - known)
        if unknown:
            raise ValueError(f"{where}: value key(s) {', '.join(unknown)} are not shown by a grid table; its keys: "
                             "val_best, val_final, <benchmark>_best, <benchmark>_final")
        rows[(int(row["G"]), float(row["T"]))] = row
    return rows


def grid_table(job: dict, results: Results, paper: dict) -> Table:
    """Table 1: one method's best/final accuracy and collapse per (G, T) cell, mean ± sd over seeds."""
    spec = job["spec"]
    benchmarks = spec.get("benchmarks", [])
    columns = ["G", "T", "Source", "Seeds", "Val best (step)", "Val final", "Collapse step"]
    columns += [f"{benchmark_label(b)} {c}" for b in benchmarks for c in ("best", "final")]
    all_runs = plan.runs_of_job(job)
    rows, missing = [], []
    paper_rows = grid_paper_rows(paper, job["name"], benchmarks)
    for G, T in spec["cells"]:
        runs = plan.select_runs(all_runs, {"model": [spec["model"]], "method": [spec["method"]], "G": [int(G)],
                                           "T": [float(T)]})
        datas = [results.run(r) for r in runs]
        present = [d for d in datas if d.curve is not None]
        missing += [d.run.run_id for d in datas if d.curve is None]
        if not runs:
            missing.append(f"{spec['model']}/{spec['method']}/G{G}_T{plan.format_temperature(T)} (not in the grid)")
        head = [str(G), plan.format_temperature(T)]
        if present:
            curves = [d.curve for d in present]
            # per seed, in the order of the best steps: "–" for a seed that did not collapse
            steps = [str(c.collapse_step) if c.collapsed else "–" for c in curves]
            # Seeds: the cell's runs in the grid, as in Tables 2 and 3; "(n/m)" where only n of them have a curve
            cells = ["ours", str(len(runs)),
                     f"{mean_sd([c.best for c in curves], len(runs))} "
                     f"({', '.join(str(c.best_step) for c in curves)})",
                     mean_sd([c.final for c in curves], len(runs))
                     + (f" {COLLAPSE_MARK}" if any(c.collapsed for c in curves) else ""),
                     ", ".join(steps) if any(c.collapsed for c in curves) else "–"]
            for b in benchmarks:
                for ck in ("best", "final"):
                    found = [(d.run, results.evaluation(d.run, ck, b)) for d in present]
                    missing += [f"{run.run_id}/{ck}/{b}" for run, v in found if v is None]
                    cells.append(scores_cell([v for _, v in found if v is not None], len(runs)))
        else:
            cells = ["ours", str(len(runs))] + [MISSING] * (len(columns) - 4)
        rows.append(head + cells)
        paper_row = paper_rows.get((int(G), float(T)))
        if paper_row is not None:
            values = paper_row.get("values", {})
            rows.append(head + ["paper", "–"] + [paper_value(values.get(k)) for k in ("val_best", "val_final")]
                        + ["–"] + [paper_value(values.get(f"{b}_{ck}")) for b in benchmarks for ck in ("best", "final")])
    notes = [f"{spec['method']} on {spec['model']}; {SEED_NOTE}", _collapse_note(results.rule),
             *paper_notes(paper, job["name"], benchmarks)]
    return Table(spec.get("title", f"Table 1: {spec['method']} per number of rollouts G and temperature T"),
                 columns, rows, notes, missing)


@dataclass
class CheckpointRow:
    """One (method, G, T, checkpoint) over its seeds, or the base model: per benchmark the values found."""
    values: list[list[Score]]
    seeds: Optional[int]  # runs of the row in the grid; None for the base model
    curves: list[Optional[CurveSummary]]
    missing: list[str]

    def cells(self) -> list[str]:
        return ["–" if self.seeds is None else str(self.seeds)] + [scores_cell(v, self.seeds) for v in self.values]


def _checkpoint_row(spec_row: dict, model: str, benchmarks: Sequence[str], all_runs, results: Results) -> CheckpointRow:
    if spec_row["checkpoint"] == "base":
        found = [results.evaluation(None, "base", b, model) for b in benchmarks]
        missing = [f"{model}/base/{b}" for b, v in zip(benchmarks, found) if v is None]
        return CheckpointRow([[] if v is None else [v] for v in found], None, [], missing)
    runs = plan.select_runs(all_runs, {"model": [model], "method": [spec_row["method"]], "G": [int(spec_row["G"])],
                                       "T": [float(spec_row["T"])]})
    if not runs:
        return CheckpointRow([[] for _ in benchmarks], 0, [], [f"{model}/{spec_row['method']}/G{spec_row['G']}_"
                                                           f"T{plan.format_temperature(spec_row['T'])} (not in the grid)"])
    values, missing = [], []
    for b in benchmarks:
        found = [(r, results.evaluation(r, spec_row["checkpoint"], b)) for r in runs]
        missing += [f"{r.run_id}/{spec_row['checkpoint']}/{b}" for r, v in found if v is None]
        values.append([v for _, v in found if v is not None])
    return CheckpointRow(values, len(runs), [results.run(r).curve for r in runs], missing)


def checkpoints_table(job: dict, results: Results, paper: dict) -> Table:
    """Table 2: rows = (method, checkpoint) such as SRT_Best / SRT_Final, columns = benchmarks."""
    spec = job["spec"]
    benchmarks = spec["benchmarks"]
    columns = ["Method", "Source", "Seeds"] + [benchmark_label(b) for b in benchmarks]
    paper_rows = {str(r["label"]): r for r in paper_rows_for(paper, job["name"], benchmarks)}
    rows, missing = [], []
    all_runs = plan.runs_of_job(job)
    for spec_row in spec["rows"]:
        row = _checkpoint_row(spec_row, spec["model"], benchmarks, all_runs, results)
        missing += row.missing
        rows.append([_mark(spec_row["label"], row.curves), "ours"] + row.cells())
        if spec_row["label"] in paper_rows:
            paper_values = paper_rows[spec_row["label"]]["values"]
            rows.append([spec_row["label"], "paper", "–"] + [paper_value(paper_values.get(b)) for b in benchmarks])
    notes = [f"model {spec['model']}; {SEED_NOTE}; Final = last step", _collapse_note(results.rule),
             *paper_notes(paper, job["name"], benchmarks)]
    return Table(spec.get("title", "Table 2: best and final checkpoints"), columns, rows, notes, missing)


def rollouts_table(job: dict, results: Results, paper: dict) -> Table:
    """Table 3: one method's chosen checkpoint per number of rollouts G."""
    spec = job["spec"]
    benchmarks = spec["benchmarks"]
    columns = ["G", "Source", "Seeds"] + [benchmark_label(b) for b in benchmarks]
    paper_rows = {int(r["label"]): r for r in paper_rows_for(paper, job["name"], benchmarks)}
    rows, missing = [], []
    all_runs = plan.runs_of_job(job)
    for G in spec["G"]:
        spec_row = {"method": spec["method"], "G": G, "T": spec["T"], "checkpoint": spec.get("checkpoint", "final")}
        row = _checkpoint_row(spec_row, spec["model"], benchmarks, all_runs, results)
        missing += row.missing
        rows.append([_mark(str(G), row.curves), "ours"] + row.cells())
        if int(G) in paper_rows:
            rows.append([str(G), "paper", "–"] + [paper_value(paper_rows[int(G)]["values"].get(b)) for b in benchmarks])
    notes = [f"{spec['method']} on {spec['model']} at T = {spec['T']}, {spec.get('checkpoint', 'final')} checkpoint; "
             f"{SEED_NOTE}", _collapse_note(results.rule), *paper_notes(paper, job["name"], benchmarks)]
    return Table(spec.get("title", f"Table 3: {spec['method']} per number of rollouts G"), columns, rows, notes,
                 missing)


KINDS = {"summary": summary_table, "grid": grid_table, "checkpoints": checkpoints_table, "rollouts": rollouts_table}


def build_table(job: dict, paper: dict) -> Table:
    kind = job["spec"]["kind"]
    if kind not in KINDS:
        raise ValueError(f"table {job['name']!r}: unknown kind {kind!r}; known kinds: {', '.join(KINDS)}")
    results = Results(job["results"], CollapseRule.from_config(job.get("collapse")))
    return KINDS[kind](job, results, paper)
