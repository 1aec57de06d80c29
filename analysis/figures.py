"""Training curves (validation accuracy, reward, entropy, ... vs step) with peaks and collapses marked."""
from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Sequence

import matplotlib

matplotlib.use("Agg")  # files only, never a display
import matplotlib.pyplot as plt  # noqa: E402

from mgrpo.atomic import atomic_path  # noqa: E402

from . import plan  # noqa: E402
from .runs import CollapseRule, series  # noqa: E402
from .tables import Results  # noqa: E402

METRIC_LABELS = {"val_acc": "validation accuracy", "reward": "training reward", "entropy": "policy entropy (nats/token)",
                 "agreement": "agreement with the vote", "pseudo_label_acc": "pseudo-label accuracy",
                 "kl": "KL to the initial policy", "filtered_frac": "filtered fraction",
                 "filtered_acc": "accuracy of filtered rollouts", "labelled_frac": "prompts the vote labelled"}


def moving_average(points: Sequence[tuple], window: int) -> list[tuple]:
    """(step, trailing mean of the last `window` values) for each point; window 1 = the points themselves."""
    if window <= 1:
        return list(points)
    values = [v for _, v in points]
    return [(step, sum(values[max(0, i - window + 1):i + 1]) / (i + 1 - max(0, i - window + 1)))
            for i, (step, _) in enumerate(points)]


def _value(run: plan.Run, field: str):
    return plan.format_temperature(run.T) if field == "T" else getattr(run, field)


def _order(value) -> tuple:
    """Numbers by value (G 8, 16, 128; T as spelt, e.g. '0.8', '10.0'), names alphabetically."""
    try:
        return (0, float(value), "")
    except ValueError:
        return (1, 0.0, str(value))


def plot_curves(job: dict, out_dir: Path) -> list[str]:
    """Draw one figure (PNG and PDF) for job['spec']; returns the run ids that were missing."""
    spec = job["spec"]
    rule = CollapseRule.from_config(job.get("collapse"))
    results = Results(job["results"], rule)
    runs = plan.select_runs(plan.runs_of_job(job), spec.get("select") or {})
    if not runs:  # the workflow refuses such a config before any job; run by hand it drew empty axes, rc 0
        raise ValueError(f"figure {job['name']!r}: select {spec.get('select') or {}} matches no run of the job's grid "
                         f"({len(job['runs'])} runs)")
    metrics: Sequence[str] = spec["metrics"]
    color_by = spec.get("color_by", "method")
    facet_by = spec.get("facet_by")
    facets = sorted({_value(r, facet_by) for r in runs}, key=_order) if facet_by else [None]
    keys = sorted({_value(r, color_by) for r in runs}, key=_order)
    colors = {k: plt.get_cmap("tab10")(i % 10) for i, k in enumerate(keys)}

    fig, axes = plt.subplots(len(metrics), len(facets), figsize=(4.8 * len(facets), 2.8 * len(metrics)),
                             squeeze=False, sharex="col")
    missing, labelled = [], set()
    for column, facet in enumerate(facets):
        for run in runs:
            if facet_by and _value(run, facet_by) != facet:
                continue
            data = results.run(run)
            if not data.rows:
                missing.append(run.run_id)
                continue
            key = _value(run, color_by)
            label = f"{color_by}={key}" if color_by in ("G", "T", "seed") else str(key)
            for row, metric in enumerate(metrics):
                ax = axes[row][column]
                points = series(data.rows, metric)
                if not points:
                    continue
                if metric != "val_acc":  # per-step metrics of a few prompts are noisy; val_acc is never smoothed
                    points = moving_average(points, int(spec.get("smooth", 1)))
                steps, values = zip(*points)
                show_label = (column, row, label) not in labelled
                labelled.add((column, row, label))
                ax.plot(steps, values, color=colors[key], lw=1.4, alpha=0.9, label=label if show_label else None,
                        marker="." if metric == "val_acc" else None, ms=3)
                curve = data.curve
                if curve is None:
                    continue
                if metric == "val_acc":
                    ax.plot([curve.best_step], [curve.best], "o", color=colors[key], ms=6, mfc="none")
                    if curve.collapsed and curve.collapse_step is not None:
                        at = dict(points).get(curve.collapse_step)
                        ax.plot([curve.collapse_step], [at], "x", color="black", ms=8, mew=2)
                if curve.collapsed and curve.collapse_step is not None:
                    ax.axvline(curve.collapse_step, color=colors[key], ls=":", lw=1)
        for row, metric in enumerate(metrics):
            ax = axes[row][column]
            ax.set_ylabel(METRIC_LABELS.get(metric, metric))
            ax.grid(alpha=0.3)
            if row == 0 and facet_by:
                ax.set_title(f"{facet_by} = {facet}")
            if row == len(metrics) - 1:
                ax.set_xlabel("step")
    present = [run.run_id for run in runs if results.run(run).rows]
    for metric in metrics:  # a misspelt or never-logged metric would leave its panels blank without a word
        if present and not any(series(results.run(run).rows, metric) for run in runs if results.run(run).rows):
            raise ValueError(f"figure {job['name']!r}: metric {metric!r} has no value in any of the runs "
                             f"{', '.join(present)} (their metrics.jsonl)")
    drop = f"{100 * rule.min_drop:.0f}% of peak" if rule.relative else f"{rule.min_drop:.2f}"
    # o and x are drawn on validation-accuracy panels only; a figure without one (Figure 2: entropy) has the
    # dotted lines alone, and its caption must not speak of marks it lacks
    if "val_acc" in metrics:
        caption = (f"o: best checkpoint (highest val_acc after step 0); x and dotted line: collapse "
                   f"(val_acc more than {drop} below its peak)")
    else:
        caption = f"dotted line: collapse (val_acc more than {drop} below its peak)"
    if missing:
        caption += f"; missing runs: {', '.join(sorted(set(missing)))}"
    if int(spec.get("smooth", 1)) > 1:
        caption += f"; per-step metrics: trailing mean over {int(spec['smooth'])} steps"
    fig.suptitle(textwrap.fill(spec.get("title", job["name"]), width=int(58 * len(facets))), fontsize=10)
    fig.text(0.01, 0.005, caption, fontsize=7, va="bottom", wrap=True)
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    # One legend for every panel (a colour means the same run group in each), beside them: inside a panel it hid
    # curves and marks. savefig's tight box widens the figure to hold it.
    legend = {}
    for ax in axes.flat:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            legend.setdefault(label, handle)
    if legend:
        fig.legend(legend.values(), legend.keys(), fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5),
                   frameon=False)
    out_dir = Path(out_dir)
    for suffix in ("png", "pdf"):
        with atomic_path(out_dir / f"{job['name']}.{suffix}") as tmp:
            fig.savefig(tmp, format=suffix, dpi=150, bbox_inches="tight")
    plt.close(fig)
    return sorted(set(missing))
