"""Reading run files (metrics.jsonl, evaluation JSON) and judging a training curve: start, best, final, collapse.

Best = the highest validation accuracy (ties: the earliest step), Final = the last evaluated step. A run has
collapsed when its final accuracy lies more than `min_drop` below its peak (absolute accuracy, or a fraction of
the peak with `relative`); the collapse step is the first evaluation after the peak that is that far below it.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

from mgrpo.jsonl import DataError, iter_jsonl


@dataclass(frozen=True)
class CollapseRule:
    min_drop: float = 0.10
    relative: bool = False

    def __post_init__(self):
        if not self.min_drop > 0:
            raise ValueError(f"collapse min_drop must be > 0 (got {self.min_drop!r})")

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
    best: float
    best_step: int
    final: float
    final_step: int
    drop: float  # best - final in the rule's units
    collapsed: bool
    collapse_step: Optional[int]  # first evaluation after the peak below the threshold (None if never)


def summarize_curve(points: Sequence[tuple[int, float]], rule: CollapseRule = CollapseRule()) -> CurveSummary:
    """points: (step, val_acc) pairs in any order; at least one."""
    if not points:
        raise ValueError("no validation points: the run logged no val_acc")
    ordered = sorted((int(s), float(v)) for s, v in points)
    best_step, best = ordered[0]
    for step, value in ordered:
        if value > best:  # strict: ties keep the earliest step
            best_step, best = step, value
    final_step, final = ordered[-1]
    collapse_step = next((s for s, v in ordered if s > best_step and rule.fell(best, v)), None)
    return CurveSummary(
        start=ordered[0][1], start_step=ordered[0][0], best=best, best_step=best_step, final=final,
        final_step=final_step, drop=rule.drop(best, final), collapsed=rule.fell(best, final),
        collapse_step=collapse_step,
    )


def read_metrics(path: Path) -> list[dict]:
    """metrics.jsonl -> rows; a bad line is an error naming the file and line."""
    rows = []
    for where, row in iter_jsonl(path, "metrics file"):
        if "step" not in row:
            raise DataError(f"{where}: a metrics row needs a 'step' key")
        rows.append(row)
    return rows


def series(rows: Sequence[dict], key: str) -> list[tuple[int, float]]:
    """(step, value) for the rows that carry a finite `key`, by step."""
    points = []
    for row in rows:
        value = row.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            points.append((int(row["step"]), float(value)))
    return sorted(points)


def read_evaluation(path: Path) -> dict:
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not JSON ({err.msg})") from None
    for key in ("benchmark", "value"):
        if key not in data:
            raise ValueError(f"{path}: evaluation result lacks {key!r}")
    return data
