"""metrics.jsonl rows (the schema of docs/architecture.md) from one verl step (the file's resume rule:
``mgrpo.jsonl.truncate_log``)."""
from __future__ import annotations

import math
import re
from typing import Any, Mapping, Optional

from mgrpo.run_metrics import METRIC_KEYS


# Beside metrics.jsonl, in WORK_DIR: per step, verl's timing_raw (seconds) and the rollout-vs-actor log-prob gaps.
STEPS_FILE = "verl_steps.jsonl"
METHOD_KEYS = ("reward", "agreement", "entropy", "filtered_frac", "filtered_acc", "labelled_frac",
               "pseudo_label_acc", "rollout_acc", "momentum_agreement")

# verl names, first match wins (the actor's metrics arrive prefixed with "actor/" by the trainer).
VERL_KEYS = {
    "kl": ("actor/kl_loss", "actor/actor/kl_loss"),
    "loss": ("actor/loss", "actor/pg_loss", "actor/actor/pg_loss"),
    "lr": ("actor/lr",),
    "grad_norm": ("actor/grad_norm",),
    "step_seconds": ("timing_s/step",),
}
# verl's validation puts one variable per data source in val-core: "acc" where the reward function returns one, else
# "reward" (the rollout's score; ours is correctness on test rows): ray_trainer._validation, verl 0.9.1.
VAL_ACC = re.compile(r"^val-core/[^/]+/(?:acc|reward)/mean@(\d+)$")


def _number(value) -> Optional[float]:
    if value is None:
        return None
    try:
        value = float(value.item() if hasattr(value, "item") else value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def val_accuracy(verl_metrics: Mapping[str, Any]) -> Optional[float]:
    """verl's validation accuracy (``val-core/<source>/{acc,reward}/mean@n``, largest n; mean over data sources)."""
    by_source: dict[str, tuple[int, float]] = {}
    for key, value in verl_metrics.items():
        match = VAL_ACC.match(key)
        if match and _number(value) is not None:
            source = key.split("/")[1]
            n = int(match.group(1))
            if source not in by_source or n > by_source[source][0]:
                by_source[source] = (n, _number(value))
    if not by_source:
        return None
    return sum(acc for _, acc in by_source.values()) / len(by_source)


def metrics_row(step: int, method_metrics: Mapping[str, Any], verl_metrics: Mapping[str, Any],
                rollouts: int) -> dict:
    """One line of metrics.jsonl; ``rollouts`` = prompts x G generated in the step."""
    row = {key: None for key in METRIC_KEYS}
    row["step"] = int(step)
    for key in METHOD_KEYS:
        row[key] = _number(method_metrics.get(key))
    for key, candidates in VERL_KEYS.items():
        row[key] = next((_number(verl_metrics[c]) for c in candidates if c in verl_metrics), None)
    if row["step_seconds"]:
        row["rollouts_per_s"] = rollouts / row["step_seconds"]
    acc = val_accuracy(verl_metrics)
    if acc is not None:
        row["val_acc"] = acc
        row["val_acc_greedy"] = None  # verl validates with one sampling configuration (docs/verl_backend.md)
    return row
