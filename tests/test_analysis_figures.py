"""Figures: files written, collapses and missing runs noted."""
import json
from pathlib import Path

import pytest

from analysis import figures, plan
from analysis.figures import plot_curves


def write_metrics(results: Path, run: plan.Run, val_acc):
    directory = Path(plan.run_dir(str(results), run))
    directory.mkdir(parents=True)
    rows = [{"step": 10 * i, "val_acc": v, **({"reward": v, "entropy": 1 - v} if i else {})}
            for i, v in enumerate(val_acc)]
    (directory / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_curves_figure_is_written_as_png_and_pdf_and_lists_missing_runs(tmp_path):
    crash, steady, absent = (plan.Run("toy", m, 8, 1.0, 0) for m in ("srt", "mgrpo", "intuitor"))
    write_metrics(tmp_path, crash, [0.3, 0.7, 0.2])
    write_metrics(tmp_path, steady, [0.3, 0.5, 0.6])
    job = {"name": "toy_curves", "results": str(tmp_path), "collapse": {"min_drop": 0.1},
           "runs": [r.to_dict() for r in (crash, steady, absent)],
           "spec": {"select": {"method": ["srt", "mgrpo", "intuitor"]}, "color_by": "method",
                    "metrics": ["val_acc", "reward", "entropy"]}}
    out = tmp_path / "figures"
    missing = plot_curves(job, out)
    assert missing == [absent.run_id]
    assert (out / "toy_curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (out / "toy_curves.pdf").read_bytes()[:5] == b"%PDF-"
    assert not list(out.glob(".*"))  # no temp files left behind


def test_facets_and_selection(tmp_path, monkeypatch):
    runs = [plan.Run(model, method, 32, 1.1, 0) for model in ("a", "b", "c") for method in ("srt", "intuitor")]
    for run in runs:
        write_metrics(tmp_path, run, [0.9, 0.95] if run.model == "c" else [0.2, 0.4])
    job = {"name": "figure5", "results": str(tmp_path), "runs": [r.to_dict() for r in runs],
           "spec": {"select": {"model": ["a", "b"]}, "color_by": "method", "facet_by": "model",
                    "metrics": ["reward", "val_acc"]}}
    fig = drawn_figure(job, tmp_path / "f", monkeypatch)
    assert (tmp_path / "f" / "figure5.png").is_file()
    assert len(fig.axes) == 4  # 2 metrics (rows) x 2 selected models (columns); model c is not selected
    assert [ax.get_title() for ax in fig.axes[:2]] == ["model = a", "model = b"]
    for ax in fig.axes:
        curves = [line for line in ax.get_lines() if line.get_linestyle() == "-"]
        assert sorted(line.get_label() for line in curves) == ["intuitor", "srt"]
        assert all(max(line.get_ydata()) <= 0.4 for line in curves)  # none of model c's 0.9 / 0.95
    assert "missing runs" not in " ".join(text.get_text() for text in fig.texts)


def test_moving_average_is_a_trailing_mean_over_the_window():
    from analysis.figures import moving_average

    points = [(1, 1.0), (2, 3.0), (3, 5.0), (4, 7.0)]
    assert moving_average(points, 1) == points
    # hand-computed: 1, (1+3)/2, (1+3+5)/3, (3+5+7)/3
    assert moving_average(points, 3) == [(1, 1.0), (2, 2.0), (3, 3.0), (4, 5.0)]


def drawn_figure(job, out, monkeypatch):
    """Run plot_curves and keep the matplotlib figure it closes."""
    kept = []
    monkeypatch.setattr(figures.plt, "close", kept.append)
    plot_curves(job, out)
    return kept[0]


def test_markers_sit_on_the_best_trained_step_and_the_collapse(tmp_path, monkeypatch):
    run = plan.Run("toy", "srt", 8, 1.0, 0)
    write_metrics(tmp_path, run, [0.8, 0.5, 0.7, 0.3, 0.2])  # peak at step 0, best trained at 20, falls at 30
    job = {"name": "f", "results": str(tmp_path), "collapse": {"min_drop": 0.1}, "runs": [run.to_dict()],
           "spec": {"color_by": "method", "metrics": ["val_acc", "entropy"]}}
    fig = drawn_figure(job, tmp_path / "out", monkeypatch)
    accuracy, entropy = fig.axes
    assert [accuracy.get_ylabel(), entropy.get_ylabel()] == ["validation accuracy", "policy entropy (nats/token)"]
    markers = {line.get_marker(): list(zip(line.get_xdata(), line.get_ydata())) for line in accuracy.get_lines()
               if line.get_linestyle() in ("None", "")}
    assert markers["o"] == [(20, 0.7)]  # best/ is a trained step, not the base model's 0.8
    # the dip at step 10 came back to within 0.1 of the peak (0.7, the best/ step): the run falls at step 30
    assert markers["x"] == [(30, 0.3)]
    dotted = [line.get_xdata()[0] for ax in (accuracy, entropy) for line in ax.get_lines()
              if line.get_linestyle() == ":"]
    assert dotted == [30, 30]
    assert "o: best checkpoint" in " ".join(text.get_text() for text in fig.texts)


def test_a_metric_no_run_logged_is_an_error_naming_it(tmp_path):
    run = plan.Run("toy", "srt", 8, 1.0, 0)
    write_metrics(tmp_path, run, [0.3, 0.5])
    job = {"name": "f", "results": str(tmp_path), "runs": [run.to_dict()],
           "spec": {"metrics": ["val_acc", "rewards"]}}
    with pytest.raises(ValueError, match="metric 'rewards' has no value in any of the runs toy/srt/G8_T1.0_s0"):
        plot_curves(job, tmp_path / "out")


def test_a_figure_without_accuracy_panels_has_dotted_collapses_and_no_caption_of_marks_it_lacks(tmp_path,
                                                                                                monkeypatch):
    run = plan.Run("toy", "srt", 8, 1.0, 0)
    write_metrics(tmp_path, run, [0.8, 0.5, 0.7, 0.3, 0.2])  # collapses at step 30 (the dip at 10 came back)
    job = {"name": "f", "results": str(tmp_path), "collapse": {"min_drop": 0.1}, "runs": [run.to_dict()],
           "spec": {"color_by": "method", "metrics": ["entropy"]}}
    fig = drawn_figure(job, tmp_path / "out", monkeypatch)
    (entropy,) = fig.axes
    markers = [line.get_marker() for line in entropy.get_lines() if line.get_linestyle() in ("None", "")]
    assert markers == []  # o and x live on validation-accuracy panels only
    assert [line.get_xdata()[0] for line in entropy.get_lines() if line.get_linestyle() == ":"] == [30]
    caption = " ".join(text.get_text() for text in fig.texts)
    assert "dotted line: collapse" in caption
    assert "o:" not in caption and "x and" not in caption


def test_one_legend_beside_the_panels_names_each_colour_once(tmp_path, monkeypatch):
    # a legend inside a panel hid curves and collapse marks (toy_curves' accuracy panel)
    runs = [plan.Run("toy", method, G, 1.0, seed) for method, G in (("srt", 8), ("srt", 16), ("mgrpo", 8))
            for seed in (0, 1)]
    for run in runs:
        write_metrics(tmp_path, run, [0.3, 0.6, 0.2])
    job = {"name": "f", "results": str(tmp_path), "runs": [r.to_dict() for r in runs],
           "spec": {"color_by": "method", "metrics": ["val_acc", "entropy"]}}
    fig = drawn_figure(job, tmp_path / "out", monkeypatch)
    assert all(ax.get_legend() is None for ax in fig.axes)
    (legend,) = fig.legends
    assert sorted(text.get_text() for text in legend.get_texts()) == ["mgrpo", "srt"]
    colours = {text.get_text(): handle.get_color() for text, handle in zip(legend.get_texts(), legend.legend_handles)}
    assert colours["srt"] != colours["mgrpo"]
    fig.canvas.draw()  # the legend lies right of every panel, so it covers none
    right_edge = max(ax.get_window_extent().x1 for ax in fig.axes)
    assert legend.get_window_extent().x0 >= right_edge


def test_a_selection_that_matches_no_run_is_an_error_not_an_empty_figure(tmp_path, capsys):
    from analysis.__main__ import main

    run = plan.Run("toy", "srt", 8, 1.0, 0)
    write_metrics(tmp_path, run, [0.3, 0.7, 0.2])
    job = {"name": "figure2", "results": str(tmp_path), "runs": [run.to_dict()],
           "spec": {"select": {"method": ["mgrpo"]}, "color_by": "method", "metrics": ["entropy"]}}
    assert main(["figure", "--job", json.dumps(job), "--out", str(tmp_path / "f")]) == 2
    err = capsys.readouterr().err.strip()
    assert err == ("analysis figure: error: figure 'figure2': select {'method': ['mgrpo']} matches no run of the "
                   "job's grid (1 runs)")
    assert not (tmp_path / "f" / "figure2.png").exists()


@pytest.mark.parametrize("field, values, expected", [
    ("G", [128, 8, 16], ["G = 8", "G = 16", "G = 128"]),  # sorted as text: 128, 16, 8
    ("T", [10.0, 0.8, 2.0], ["T = 0.8", "T = 2.0", "T = 10.0"]),  # as text: 0.8, 10.0, 2.0
    ("seed", [10, 2], ["seed = 2", "seed = 10"]),
])
def test_numeric_facets_are_in_numeric_order(tmp_path, monkeypatch, field, values, expected):
    base = {"model": "m", "method": "srt", "G": 8, "T": 1.0, "seed": 0}
    runs = [plan.Run(**{**base, field: value}) for value in values]
    for run in runs:
        write_metrics(tmp_path, run, [0.2, 0.4])
    job = {"name": "f", "results": str(tmp_path), "runs": [r.to_dict() for r in runs],
           "spec": {"select": {}, "color_by": "method", "facet_by": field, "metrics": ["val_acc"]}}
    fig = drawn_figure(job, tmp_path / "f", monkeypatch)
    assert [ax.get_title() for ax in fig.axes] == expected
