"""Reading run files (metrics.jsonl, evaluation JSON) and judging a training curve: start, peak, best, final,
collapse.

Peak = the highest validation accuracy of the curve, step 0 (the base model) included; Best = the highest among
the trained steps (step > 0), the step both trainers save as ``best/`` (ties: the earliest step, for both);
Final = the last evaluated step. A run has collapsed when its final accuracy lies more than `min_drop` below its
peak (absolute accuracy, or a fraction of the peak with `relative`); its collapse step is the first evaluation
that far below the peak after the curve's last evaluation within that distance of it (a dip that comes back up to,
or near, the peak is not where the run collapsed). A run that did not collapse records the first such dip after
its peak.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

from mgrpo.jsonl import DataError, iter_jsonl, read_json


@dataclass(frozen=True)
class CollapseRule:
    min_drop: float = 0.10
    relative: bool = False

    def __post_init__(self):
        if not self.min_drop > 0:
            raise ValueError(f"collapse min_drop must be > 0 (got {self.min_drop!r})")
        # an accuracy, and a drop relative to the peak, lie in [0, 1]: a drop of more than 1 never happens
        if not self.min_drop < 1:
            raise ValueError(f"collapse min_drop must be < 1, a fraction of accuracy, not points (got "
                             f"{self.min_drop!r}): no run could ever collapse")

    @classmethod
    def from_config(cls, config: Optional[dict]) -> "CollapseRule":
        config = config or {}
        return cls(min_drop=float(config.get("min_drop", 0.10)), relative=bool(config.get("relative", False)))

    def drop(self, peak: float, value: float) -> float:
        """How far `value` lies below `peak`, in the rule's units."""
        below = peak - value
        if self.relative:
            return below / peak if peak > 0 else 0.0
        return below

    def fell(self, peak: float, value: float) -> bool:
        return self.drop(peak, value) > self.min_drop + 1e-12


@dataclass(frozen=True)
class CurveSummary:
    start: float
    start_step: int
    peak: float  # highest of the whole curve, step 0 included: what a collapse is measured from
    peak_step: int
    best: float  # highest among the trained steps (step > 0): the best/ checkpoint; the start if none
    best_step: int
    final: float
    final_step: int
    drop: float  # peak - final in the rule's units
    collapsed: bool
    collapse_step: Optional[int]  # collapsed: the fall after the last evaluation within the threshold; else the first dip (None if never)


def _highest(points: Sequence[tuple[int, float]]) -> tuple[int, float]:
    """(step, value) of the highest value; ties keep the earliest step (points sorted by step)."""
    return min(points, key=lambda point: (-point[1], point[0]))


def summarize_curve(points: Sequence[tuple[int, float]], rule: CollapseRule = CollapseRule()) -> CurveSummary:
    """points: (step, val_acc) pairs in any order; at least one."""
    if not points:
        raise ValueError("no validation points: the run logged no val_acc")
    ordered = sorted((int(s), float(v)) for s, v in points)
    peak_step, peak = _highest(ordered)
    best_step, best = _highest([p for p in ordered if p[0] > 0] or ordered)
    final_step, final = ordered[-1]
    collapsed = rule.fell(peak, final)
    # A collapsed run fell where it left the threshold for the last time: after its last evaluation within
    # min_drop of the peak (the peak itself, or a return to it or near it), not in a dip that came back (one back
    # to 0.79 of a 0.80 peak as much as one back to 0.80; with the peak at steps 0 and 20, a dip at step 10 would
    # lie before the best/ checkpoint). A run that did not collapse records its first dip past the threshold.
    since = max(s for s, v in ordered if s >= peak_step and not rule.fell(peak, v)) if collapsed else peak_step
    collapse_step = next((s for s, v in ordered if s > since and rule.fell(peak, v)), None)
    return CurveSummary(
        start=ordered[0][1], start_step=ordered[0][0], peak=peak, peak_step=peak_step, best=best,
        best_step=best_step, final=final, final_step=final_step, drop=rule.drop(peak, final),
        collapsed=collapsed, collapse_step=collapse_step,
    )


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def read_metrics(path: Path) -> list[dict]:
    """metrics.jsonl -> rows; a bad line is an error naming the file and line.

    Both trainers write a metric as a finite number or null (not logged that step), so a string, a boolean or
    a NaN/inf in a metric would silently fall out of a curve: it is an error, named with its line and key; so is
    an accuracy (``*_acc``) outside [0, 1] and a step that is not an integer >= 0.
    """
    rows, seen = [], {}
    for where, row in iter_jsonl(path, "metrics file"):
        step = row.get("step")
        if not (_is_number(step) and math.isfinite(step) and step >= 0 and step == int(step)):
            # a fractional step would be cut to an integer in the curves (1.5 -> 1) and meet step 1 there
            raise DataError(f"{where}: a metrics row needs a 'step' key that is an integer >= 0 (got {step!r})")
        # both trainers write each step once (a resume truncates the log to its checkpoint: jsonl.truncate_log)
        if row["step"] in seen:
            raise DataError(f"{where}: step {row['step']} is logged twice (also on line {seen[row['step']]})")
        seen[row["step"]] = where.rsplit(":", 1)[1]
        for key, value in row.items():
            if value is not None and not (_is_number(value) and math.isfinite(value)):
                raise DataError(f"{where}: {key} = {value!r}; a metric is a finite number or null")
            if value is not None and key.endswith("_acc") and not 0 <= value <= 1:
                raise DataError(f"{where}: {key} = {value!r}; an accuracy lies in [0, 1]")
        rows.append(row)
    return rows


def series(rows: Sequence[dict], key: str) -> list[tuple[int, float]]:
    """(step, value) for the rows that logged `key` (not null), by step."""
    return sorted((int(row["step"]), float(row[key])) for row in rows if row.get(key) is not None)


def read_evaluation(path: Path) -> dict:
    """An evaluation result (``mgrpo evaluate``'s <benchmark>.json): a JSON object for the benchmark that the file
    is named after, whose accuracies (value, and each of metrics: avg@k, pass@k) lie in [0, 1] and whose stderr,
    where given, is a finite number >= 0."""
    path = Path(path)
    benchmark = path.stem
    data = read_json(path)
    if not isinstance(data, dict):
        raise ValueError(f"{path}: an evaluation result is a JSON object (got {type(data).__name__})")
    for key in ("benchmark", "value"):
        if key not in data:
            raise ValueError(f"{path}: evaluation result lacks {key!r}")
    if data["benchmark"] != benchmark:
        raise ValueError(f"{path}: benchmark = {data['benchmark']!r}, not the file's benchmark {benchmark!r}")
    metrics = data.get("metrics") or {}
    if not isinstance(metrics, dict):
        raise ValueError(f"{path}: metrics = {metrics!r}; expected an object of accuracies")
    for key, value in [("value", data["value"])] + [(f"metrics.{k}", v) for k, v in metrics.items()]:
        if not (_is_number(value) and math.isfinite(value)):
            raise ValueError(f"{path}: {key} = {value!r}; an evaluation's value is a finite number")
        if not 0 <= value <= 1:
            raise ValueError(f"{path}: {key} = {value!r}; an accuracy lies in [0, 1]")
    stderr = data.get("stderr")
    if stderr is not None and not (_is_number(stderr) and math.isfinite(stderr) and stderr >= 0):
        raise ValueError(f"{path}: stderr = {stderr!r}; a standard error is null or a finite number >= 0")
    return data
