"""Tables from fixture run files: Best/Final/collapse marks, missing runs, and the paper's own Table 2."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from analysis import plan
from analysis.runs import read_evaluation
from analysis.tables import build_table, load_paper_numbers, render_paper_table

REPO = Path(__file__).resolve().parents[1]
PAPER = load_paper_numbers(REPO / "analysis" / "paper_numbers.yaml")

# Hand-typed from the transcription cited in analysis/paper_numbers.yaml (Table 2 of arXiv:2512.13070).
EXPECTED_PAPER_TABLE2 = """\
| Method | MATH500 | AIME24 | AIME25 | GPQA Diamond | GPQA | LiveCodeBench |
|---|---|---|---|---|---|---|
| Original | 61.50 | 0.83 | 5.00 | 34.41 | 29.91 | 9.61 |
| SRT_Best | 79.20 | 12.50 | 11.67 | 38.26 | 35.04 | 19.69 |
| SRT_Final | 47.50 | 7.50 | 8.75 | 28.54 | 25.89 | 16.12 |
| M-GRPO+IQR_Final | 79.75 | 14.58 | 14.17 | 39.65 | 35.49 | 27.12 |"""


def write_run(results: Path, run: plan.Run, val_acc: list[float], evaluations: dict[str, float]):
    directory = Path(plan.run_dir(str(results), run))
    directory.mkdir(parents=True)
    rows = [{"step": 10 * i, "val_acc": v, "reward": v} for i, v in enumerate(val_acc)]
    (directory / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    for checkpoint, value in evaluations.items():
        out = Path(plan.eval_dir(str(results), run, checkpoint))
        out.mkdir(parents=True)
        (out / "math500.json").write_text(json.dumps({"benchmark": "math500", "value": value}))


def job(results, runs, kind, spec, name="t"):
    return {"name": name, "kind": "table", "results": str(results), "runs": [r.to_dict() for r in runs],
            "spec": {"kind": kind, **spec}, "collapse": {"min_drop": 0.1}}


def markdown_table_lines(markdown: str) -> list[str]:
    return [line for line in markdown.splitlines() if line.startswith("|")]


def test_paper_table2_reproduces_the_paper_cell_for_cell():
    rendered = render_paper_table(PAPER, "table2").markdown()
    assert "\n".join(markdown_table_lines(rendered)) == EXPECTED_PAPER_TABLE2


def test_paper_table1_is_explicitly_not_transcribed():
    assert "not transcribed" in PAPER["tables"]["table1"]["status"]
    with pytest.raises(ValueError, match="no transcribed rows"):
        render_paper_table(PAPER, "table1")


def test_table2_marks_best_final_and_collapse_and_keeps_paper_rows_apart(tmp_path):
    srt = plan.Run("m", "srt", 32, 1.1, 0)
    ours = plan.Run("m", "mgrpo_iqr", 32, 1.1, 0)
    write_run(tmp_path, srt, [0.3, 0.8, 0.2], {"best": 0.79, "final": 0.475})  # peak then crash
    write_run(tmp_path, ours, [0.3, 0.6, 0.7], {"final": 0.7975})
    base = tmp_path / "eval" / "m" / "base"
    base.mkdir(parents=True)
    (base / "math500.json").write_text(json.dumps({"benchmark": "math500", "value": 0.615}))
    spec = {"model": "m", "benchmarks": ["math500"], "rows": [
        {"label": "Original", "checkpoint": "base"},
        {"label": "SRT_Best", "method": "srt", "G": 32, "T": 1.1, "checkpoint": "best"},
        {"label": "SRT_Final", "method": "srt", "G": 32, "T": 1.1, "checkpoint": "final"},
        {"label": "M-GRPO+IQR_Final", "method": "mgrpo_iqr", "G": 32, "T": 1.1, "checkpoint": "final"}]}
    table = build_table(job(tmp_path, [srt, ours], "checkpoints", spec, name="table2"), PAPER)
    assert table.rows == [
        ["Original", "ours", "–", "61.50"], ["Original", "paper", "–", "61.50"],
        ["SRT_Best ↓", "ours", "1", "79.00"], ["SRT_Best", "paper", "–", "79.20"],
        ["SRT_Final ↓", "ours", "1", "47.50"], ["SRT_Final", "paper", "–", "47.50"],
        ["M-GRPO+IQR_Final", "ours", "1", "79.75"], ["M-GRPO+IQR_Final", "paper", "–", "79.75"],
    ]
    assert table.missing == []


def test_summary_marks_the_collapse_and_lists_missing_runs(tmp_path):
    crash = plan.Run("toy", "srt", 8, 1.0, 0)
    steady = plan.Run("toy", "mgrpo", 8, 1.0, 0)
    absent = plan.Run("toy", "intuitor", 8, 1.0, 0)
    write_run(tmp_path, crash, [0.30, 0.50, 0.70, 0.65, 0.20], {"best": 0.7, "final": 0.2})
    write_run(tmp_path, steady, [0.30, 0.40, 0.45, 0.50, 0.50], {"best": 0.5, "final": 0.5})
    spec = {"benchmarks": ["math500"]}
    table = build_table(job(tmp_path, [crash, steady, absent], "summary", spec), PAPER)
    by_method = {row[1]: row for row in table.rows}
    columns = table.columns
    srt = dict(zip(columns, by_method["srt"]))
    assert srt["Best (step)"] == "70.00 (20)"
    assert srt["Final (step)"] == "20.00 (40) ↓"
    assert srt["Collapse"] == "yes (step 40)"  # 0.65 is within 0.1 of the peak; 0.20 is not
    mgrpo = dict(zip(columns, by_method["mgrpo"]))
    assert mgrpo["Best (step)"] == "50.00 (30)" and mgrpo["Collapse"] == "no"
    assert set(by_method["intuitor"][5:]) == {"missing"}
    assert table.missing == [absent.run_id]
    assert f"missing (1): {absent.run_id}" in table.markdown()


def test_rollouts_table_shows_missing_cells_and_the_papers_row(tmp_path):
    present = plan.Run("m", "mgrpo_iqr", 8, 1.1, 0)
    write_run(tmp_path, present, [0.5, 0.7], {"final": 0.776})
    spec = {"model": "m", "method": "mgrpo_iqr", "T": 1.1, "G": [8, 16], "checkpoint": "final",
            "benchmarks": ["math500", "aime24"]}
    table = build_table(job(tmp_path, [present, plan.Run("m", "mgrpo_iqr", 16, 1.1, 0)], "rollouts", spec,
                            name="table3"), PAPER)
    assert table.rows[0] == ["8", "ours", "1", "77.60", "missing"]
    assert table.rows[1] == ["8", "paper", "–", "77.60", "11.25"]
    assert table.rows[2] == ["16", "ours", "1", "missing", "missing"]
    assert "m/mgrpo_iqr/G16_T1.1_s0/final/math500" in table.missing


def test_grid_table_means_over_seeds_and_reports_each_best_step(tmp_path):
    a, b = plan.Run("m", "srt", 16, 1.1, 0), plan.Run("m", "srt", 16, 1.1, 1)
    write_run(tmp_path, a, [0.2, 0.6, 0.3], {})
    write_run(tmp_path, b, [0.2, 0.4, 0.5], {})
    spec = {"model": "m", "method": "srt", "cells": [[16, 1.1], [32, 1.1]], "benchmarks": []}
    table = build_table(job(tmp_path, [a, b], "grid", spec, name="table1"), PAPER)
    ours = dict(zip(table.columns, table.rows[0]))
    assert ours["Seeds"] == "2"
    # mean of 0.6 and 0.5; sample sd = |0.6 - 0.5| / sqrt(2) = 0.0707
    assert ours["Val best (step)"] == "55.00 ± 7.07 (10, 20)"
    assert ours["Val final"] == "40.00 ± 14.14 ↓"  # finals 0.3 and 0.5; seed 0 fell 0.3 below its peak
    assert ours["Collapse step"] == "20, –"  # per seed, in the order of the best steps: seed 1 did not collapse
    assert table.rows[1][2:4] == ["ours", "0"]
    assert any("not in the grid" in m for m in table.missing)


def test_grid_table_lists_a_seeds_missing_evaluation_instead_of_averaging_the_others_quietly(tmp_path):
    a, b = plan.Run("m", "srt", 8, 1.0, 0), plan.Run("m", "srt", 8, 1.0, 1)
    write_run(tmp_path, a, [0.5, 0.9], {"best": 0.9})
    write_run(tmp_path, b, [0.5, 0.7], {})  # trained, never evaluated
    spec = {"model": "m", "method": "srt", "cells": [[8, 1.0]], "benchmarks": ["math500"]}
    table = build_table(job(tmp_path, [a, b], "grid", spec, name="table1"), PAPER)
    ours = dict(zip(table.columns, table.rows[0]))
    assert ours["Seeds"] == "2" and ours["MATH500 best"] == "90.00 (1/2)"  # one of the two seeds has a value
    assert ours["MATH500 final"] == "missing"
    assert f"{b.run_id}/best/math500" in table.missing and f"{a.run_id}/final/math500" in table.missing


def test_grid_table_counts_a_seed_that_never_trained_as_table2_does(tmp_path):
    a, b = plan.Run("m", "srt", 8, 1.0, 0), plan.Run("m", "srt", 8, 1.0, 1)
    write_run(tmp_path, a, [0.5, 0.6], {"final": 0.6})  # seed 1 has no run folder at all
    grid = build_table(job(tmp_path, [a, b], "grid", {"model": "m", "method": "srt", "cells": [[8, 1.0]],
                                                      "benchmarks": ["math500"]}, name="table1"), PAPER)
    ours = dict(zip(grid.columns, grid.rows[0]))
    assert (ours["Seeds"], ours["Val best (step)"], ours["Val final"]) == ("2", "60.00 (1/2) (10)", "60.00 (1/2)")
    assert ours["MATH500 final"] == "60.00 (1/2)" and b.run_id in grid.missing
    checkpoints = build_table(job(tmp_path, [a, b], "checkpoints", {
        "model": "m", "benchmarks": ["math500"],
        "rows": [{"label": "SRT_Final", "method": "srt", "G": 8, "T": 1.0, "checkpoint": "final"}]}), PAPER)
    assert checkpoints.rows == [["SRT_Final", "ours", "2", "60.00 (1/2)"]]


def test_table2_reports_the_spread_over_seeds_and_counts_the_seeds_it_has(tmp_path):
    seeds = [plan.Run("m", "srt", 32, 1.1, s) for s in range(3)]
    for run, final in zip(seeds, [0.40, 0.50, 0.90]):
        write_run(tmp_path, run, [0.3, 0.6, final], {"final": final})
    spec = {"model": "m", "benchmarks": ["math500"],
            "rows": [{"label": "SRT_Final", "method": "srt", "G": 32, "T": 1.1, "checkpoint": "final"}]}
    table = build_table(job(tmp_path, seeds, "checkpoints", spec), PAPER)
    # mean 0.6; deviations -0.2, -0.1, 0.3: sample variance (0.04 + 0.01 + 0.09) / 2 = 0.07, sd 0.26458
    assert table.rows == [["SRT_Final ↓", "ours", "3", "60.00 ± 26.46"]]
    assert any("sample standard deviation" in note for note in table.notes)
    assert r"60.00 $\pm$ 26.46" in table.latex()


def test_table_command_writes_markdown_latex_and_csv(tmp_path):
    run = plan.Run("toy", "srt", 8, 1.0, 0)
    write_run(tmp_path / "results", run, [0.3, 0.6, 0.1], {})
    payload = job(tmp_path / "results", [run], "summary", {"benchmarks": []}, name="toy_summary")
    out = tmp_path / "tables"
    result = subprocess.run([sys.executable, "-m", "analysis", "table", "--job", json.dumps(payload),
                             "--paper", str(REPO / "analysis" / "paper_numbers.yaml"), "--out", str(out)],
                            cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "yes (step 20)" in (out / "toy_summary.md").read_text()
    assert r"$\downarrow$" in (out / "toy_summary.tex").read_text()
    header = (out / "toy_summary.csv").read_text().splitlines()[0]
    assert header.startswith("Model,Method,G,T,Seed,Start")


def test_bad_job_is_a_clear_error(tmp_path):
    result = subprocess.run([sys.executable, "-m", "analysis", "table", "--job", "{}", "--out", str(tmp_path)],
                            cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 2
    assert "--job lacks 'name'" in result.stderr


@pytest.mark.parametrize("payload, message", [
    ([1], "--job is not a JSON object (got list)"),
    ("name spec results runs", "--job is not a JSON object (got str)"),
    ({"name": "x", "spec": [], "results": "r", "runs": []}, "--job spec = []: expected an object"),
    ({"name": "x", "spec": {"kind": "summary"}, "results": "r", "runs": [{"model": "toy"}]},
     "--job runs[0] = {'model': 'toy'}: expected {model: text, method: text, G: integer, T: number, seed: integer}"),
    ({"name": "../x", "spec": {"kind": "summary"}, "results": "r", "runs": []},
     "--job name = '../x': expected a table or figure name (letters, digits, _ . -)"),
    ({"name": "x", "spec": {"kind": "summary"}, "results": "r", "runs": [], "collapse": {"relative": "false"}},
     "--job collapse = {'relative': 'false'}: expected {min_drop: number, relative: true or false}"),
])
@pytest.mark.parametrize("command", ["table", "figure"])
def test_a_job_of_another_shape_is_one_error_line_naming_the_key(tmp_path, capsys, payload, message, command):
    # these were KeyError / TypeError tracebacks; "relative": "false" was read as true; "../x" wrote beside --out
    from analysis.__main__ import main

    assert main([command, "--job", json.dumps(payload), "--out", str(tmp_path / "out")]) == 2
    assert capsys.readouterr().err.splitlines() == [f"analysis {command}: error: {message}"]
    assert not (tmp_path / "out").exists() and not (tmp_path / "x.md").exists()


def test_val_best_is_the_best_trained_step_while_collapse_is_measured_from_the_peak(tmp_path):
    # step 0 (the base model) is the peak, but best/ is a trained checkpoint (both trainers skip step 0)
    run = plan.Run("m", "srt", 8, 1.0, 0)
    write_run(tmp_path, run, [0.62, 0.55, 0.60, 0.40], {})
    table = build_table(job(tmp_path, [run], "grid", {"model": "m", "method": "srt", "cells": [[8, 1.0]],
                                                       "benchmarks": []}), PAPER)
    ours = dict(zip(table.columns, table.rows[0]))
    assert ours["Val best (step)"] == "60.00 (20)"
    assert ours["Val final"] == "40.00 ↓"  # 0.22 below the peak 0.62 (> 0.1)
    assert ours["Collapse step"] == "30"


def test_summary_lists_every_missing_evaluation(tmp_path):
    run = plan.Run("toy", "srt", 8, 1.0, 0)
    write_run(tmp_path, run, [0.3, 0.6], {"best": 0.5})
    payload = job(tmp_path, [run], "summary", {"benchmarks": ["math500"]})
    payload["evaluations"] = [[run.run_id, "best"], [run.run_id, "final"]]
    table = build_table(payload, PAPER)
    assert dict(zip(table.columns, table.rows[0]))["MATH500 final"] == "missing"
    assert table.missing == [f"{run.run_id}/final/math500"]


@pytest.mark.parametrize("value", [None, "n/a", float("nan"), float("inf"), True])
def test_an_evaluation_whose_value_is_not_a_finite_number_is_an_error_naming_the_file(tmp_path, value):
    run = plan.Run("toy", "srt", 8, 1.0, 0)
    write_run(tmp_path, run, [0.3, 0.6], {"best": 0.5})
    path = Path(plan.eval_dir(str(tmp_path), run, "best")) / "math500.json"
    path.write_text(json.dumps({"benchmark": "math500", "value": value}))
    with pytest.raises(ValueError, match=rf"{path.name}: value = "):
        build_table(job(tmp_path, [run], "summary", {"benchmarks": ["math500"]}), PAPER)


@pytest.mark.parametrize("content, message", [
    (b"null", "an evaluation result is a JSON object (got NoneType)"),
    (b"5", "an evaluation result is a JSON object (got int)"),
    (b'"str"', "an evaluation result is a JSON object (got str)"),
    (b"\xff\xfe", "not UTF-8 (invalid start byte at byte 0)"),
    (b'{"benchmark": "toy",\n "value": }', "not valid JSON (Expecting value at line 2 column 11)"),
    (b'{"benchmark": "gsm", "value": 0.5}', "benchmark = 'gsm', not the file's benchmark 'toy'"),
    (b'{"benchmark": "toy", "value": 7}', "value = 7; an accuracy lies in [0, 1]"),
    (b'{"benchmark": "toy", "value": -3}', "value = -3; an accuracy lies in [0, 1]"),
    (b'{"benchmark": "toy", "value": 0.5, "metrics": {"avg@4": 0.5, "pass@4": 1.5}}',
     "metrics.pass@4 = 1.5; an accuracy lies in [0, 1]"),
])
def test_a_malformed_evaluation_file_is_a_one_line_error_naming_it(tmp_path, content, message):
    path = tmp_path / "toy.json"
    path.write_bytes(content)
    with pytest.raises(ValueError) as caught:
        read_evaluation(path)
    assert str(caught.value) == f"{path}: {message}"


def test_an_evaluation_file_as_mgrpo_evaluate_writes_it_is_read(tmp_path):
    # the counts and the standard error are not accuracies: only value and metrics are held to [0, 1]
    data = {"benchmark": "toy", "model": "m", "metric": "avg@4", "value": 1.0, "stderr": None, "n_problems": 40,
            "samples_per_problem": 4, "metrics": {"avg@4": 1.0, "pass@4": 1.0}}
    (tmp_path / "toy.json").write_text(json.dumps(data))
    assert read_evaluation(tmp_path / "toy.json") == data


def test_a_finished_run_that_logged_no_val_acc_is_an_error_not_a_missing_run(tmp_path):
    run = plan.Run("toy", "srt", 8, 1.0, 0)
    directory = Path(plan.run_dir(str(tmp_path), run))
    directory.mkdir(parents=True)
    (directory / "metrics.jsonl").write_text('{"step": 0, "reward": null}\n{"step": 1, "reward": 0.5}\n')
    with pytest.raises(ValueError, match=r"metrics.jsonl: no val_acc"):
        build_table(job(tmp_path, [run], "summary", {"benchmarks": []}), PAPER)


def test_latex_escapes_each_special_character_once():
    from analysis.tables import Table

    latex = Table("a\\b_c {d} ~e^ 5% & #1 $", ["x"], [["90.00 ± 1.00 ↓"]]).latex()
    assert (r"\caption{a\textbackslash{}b\_c \{d\} \textasciitilde{}e\textasciicircum{} 5\% \& \#1 \$}"
            in latex)
    assert r"90.00 $\pm$ 1.00 $\downarrow$ \\" in latex
    # OT1, LaTeX's default font encoding, has ¡ and ¿ where ASCII has < and >
    assert r"(step \textgreater{} 0, G \textless{} 8)" in Table("t", ["x"], [], notes=["(step > 0, G < 8)"]).latex()


def test_the_paper_provenance_note_goes_only_with_benchmarks_the_paper_reports(tmp_path):
    run = plan.Run("m", "srt", 32, 1.1, 0)
    write_run(tmp_path, run, [0.3, 0.6], {"final": 0.5})
    rows = [{"label": "SRT_Final", "method": "srt", "G": 32, "T": 1.1, "checkpoint": "final"}]
    toy = build_table(job(tmp_path, [run], "checkpoints", {"model": "m", "benchmarks": ["toy"], "rows": rows},
                          name="table2"), PAPER)
    assert not any("paper" in note for note in toy.notes) and [r[1] for r in toy.rows] == ["ours"]
    real = build_table(job(tmp_path, [run], "checkpoints", {"model": "m", "benchmarks": ["math500"], "rows": rows},
                           name="table2"), PAPER)
    assert [r[1] for r in real.rows] == ["ours", "paper"]
    assert any("suspect paper cells: Original/math500" in note for note in real.notes)


def test_summary_does_not_report_evaluations_the_grid_never_asks_for_as_missing(tmp_path):
    # config/paper.yaml's figure4/figure5 runs are curves only (checkpoints: []): their benchmark cells are
    # not produced by any job, so a finished workflow must not list them as missing forever.
    evaluated = plan.Run("m", "srt", 32, 1.1, 0)
    curves_only = plan.Run("m2", "intuitor", 32, 1.1, 0)
    write_run(tmp_path, evaluated, [0.3, 0.6], {"best": 0.6, "final": 0.5})
    write_run(tmp_path, curves_only, [0.3, 0.4], {})
    payload = job(tmp_path, [evaluated, curves_only], "summary", {"benchmarks": ["math500"]})
    payload["evaluations"] = [[evaluated.run_id, "best"], [evaluated.run_id, "final"]]
    table = build_table(payload, PAPER)
    rows = {row[1]: dict(zip(table.columns, row)) for row in table.rows}
    assert rows["srt"]["MATH500 best"] == "60.00" and rows["srt"]["MATH500 final"] == "50.00"
    assert rows["intuitor"]["MATH500 best"] == "–" and rows["intuitor"]["MATH500 final"] == "–"
    assert table.missing == []
    assert "missing" not in table.markdown()


@pytest.mark.parametrize("append, message", [
    ("tables:\n  table2: {rows: [\n", ":4: not YAML \\(expected the node content, but found '<stream end>'\\)"),
    ("tables:\n  table9: {columns: [math500], rows: [{label: X}]}\n",
     ": tables.table9.rows\\[0\\]: expected \\{label: ..., values: \\{column: number\\}\\}, got \\{'label': 'X'\\}"),
    ("tables:\n  table9: {columns: [math500], rows: [{label: X, values: {math500: high}}]}\n",
     ": tables.table9.rows\\[0\\].values.math500 = 'high': expected a number or null"),
    ("tables:\n  table9: [a, b]\n", ": tables.table9: expected a mapping"),
])
def test_a_malformed_paper_numbers_file_is_a_one_line_error_naming_it(tmp_path, append, message):
    path = tmp_path / "paper_numbers.yaml"
    path.write_text("paper: arXiv:2512.13070\n" + append)
    with pytest.raises(ValueError, match=rf"^{path}{message}") as caught:
        load_paper_numbers(path)
    assert "\n" not in str(caught.value)
    with pytest.raises(ValueError, match=rf"^{tmp_path / 'absent.yaml'}: cannot be read \(No such file"):
        load_paper_numbers(tmp_path / "absent.yaml")


def test_report_command_refuses_a_missing_or_folder_input_or_output_naming_it(tmp_path, capsys):
    from analysis.__main__ import main

    (tmp_path / "t.md").write_text("| a |\n")
    (tmp_path / "f.png").write_bytes(b"png")
    out = tmp_path / "report.md"
    cases = [
        # a report linking a missing image was written without a word
        (["--tables", f"{tmp_path}/t.md", "--figures", "/tmp/nofig.png"], "--figures /tmp/nofig.png: no such file"),
        (["--figures", f"{tmp_path}/f.png"],
         f"--figures {tmp_path}/f.png: the PDF linked beside it, {tmp_path}/f.pdf: no such file"),
        # IsADirectoryError tracebacks
        (["--tables", str(tmp_path)], f"--tables {tmp_path}: a folder, not a file"),
    ]
    for options, message in cases:
        assert main(["report", "--out", str(out), *options]) == 2
        assert capsys.readouterr().err == f"analysis report: error: {message}\n"
        assert not out.exists()
    assert main(["report", "--out", str(tmp_path), "--tables", f"{tmp_path}/t.md"]) == 2
    assert capsys.readouterr().err == f"analysis report: error: --out {tmp_path}: a folder, not a file\n"
    (tmp_path / "f.pdf").write_bytes(b"pdf")
    assert main(["report", "--out", str(out), "--tables", f"{tmp_path}/t.md", "--figures", f"{tmp_path}/f.png"]) == 0
    assert out.read_text() == "# mgrpo-bench results\n\n## t\n\n| a |\n\n## f\n\n![f](f.png) ([PDF](f.pdf))\n"


def test_table1_paper_rows_need_their_cell_and_the_grid_keys_and_are_shown_apart_from_ours(tmp_path):
    a = plan.Run("m", "srt", 16, 0.8, 0)
    write_run(tmp_path, a, [0.3, 0.6, 0.4], {"best": 0.5, "final": 0.25})
    spec = {"model": "m", "method": "srt", "cells": [[16, 0.8]], "benchmarks": ["math500"]}
    paper = json.loads(json.dumps(PAPER))
    table1 = paper["tables"]["table1"]
    # the format load_paper_numbers accepts and paper-table prints, but without the cell: once a KeyError traceback
    table1.update(columns=["math500_best"], rows=[{"label": "16, 0.8", "values": {"math500_best": 61.5}}])
    with pytest.raises(ValueError, match=r"tables\.table1\.rows\[0\] \(16, 0\.8\): .*numeric G and T"):
        build_table(job(tmp_path, [a], "grid", spec, name="table1"), paper)
    # a value under a key the grid does not show (bare "math500") was dropped without a word: every cell "–"
    table1["rows"] = [{"label": "16, 0.8", "G": 16, "T": 0.8, "values": {"math500": 61.5}}]
    with pytest.raises(ValueError, match="value key.*math500 are not shown"):
        build_table(job(tmp_path, [a], "grid", spec, name="table1"), paper)
    table1["rows"] = [{"label": "16, 0.8", "G": 16, "T": 0.8, "values": {"val_best": 70.0, "math500_best": 61.5}}]
    table = build_table(job(tmp_path, [a], "grid", spec, name="table1"), paper)
    rows = [dict(zip(table.columns, row)) for row in table.rows]
    assert [r["Source"] for r in rows] == ["ours", "paper"]
    # ours: best 0.6 (step 10), final 0.4; evaluations 0.5 / 0.25; the paper row only its own numbers
    assert [rows[0][k] for k in ("Val best (step)", "Val final", "MATH500 best", "MATH500 final")] == \
        ["60.00 (10)", "40.00 ↓", "50.00", "25.00"]  # 0.4 lies 0.2 below the peak 0.6: collapsed
    assert [rows[1][k] for k in ("Val best (step)", "Val final", "MATH500 best", "MATH500 final")] == \
        ["70.00", "–", "61.50", "–"]


def write_score(results: Path, run, checkpoint: str, value: float, stderr, model: str = ""):
    out = Path(plan.eval_dir(str(results), run, checkpoint, model))
    out.mkdir(parents=True, exist_ok=True)
    (out / "math500.json").write_text(json.dumps({"benchmark": "math500", "value": value, "stderr": stderr}))


def test_a_benchmark_value_from_one_seed_shows_its_standard_error_over_problems_and_several_seeds_their_sd(tmp_path):
    one = plan.Run("m", "srt", 8, 1.0, 0)
    two = [plan.Run("m", "mgrpo", 8, 1.0, s) for s in (0, 1)]
    partial = [plan.Run("m", "intuitor", 8, 1.0, s) for s in (0, 1)]
    for run in [one, *two, *partial]:
        write_run(tmp_path, run, [0.3, 0.5], {})
    # per-problem scores 1, 0, 0.5, 0.5: mean 0.5, sample sd sqrt(0.5 / 3) = 0.40825, s.e. 0.40825 / 2 = 0.20412
    write_score(tmp_path, None, "base", 0.5, 0.2041241, model="m")
    write_score(tmp_path, one, "final", 0.25, 0.125)
    write_score(tmp_path, two[0], "final", 0.4, 0.1)
    write_score(tmp_path, two[1], "final", 0.6, 0.1)  # sd over seeds |0.6 - 0.4| / sqrt(2) = 0.14142
    write_score(tmp_path, partial[0], "final", 0.4, 0.1)  # seed 1 never evaluated
    rows = [{"label": label, "method": method, "G": 8, "T": 1.0, "checkpoint": "final"}
            for label, method in (("SRT", "srt"), ("M-GRPO", "mgrpo"), ("Intuitor", "intuitor"))]
    spec = {"model": "m", "benchmarks": ["math500"], "rows": [{"label": "Base", "checkpoint": "base"}, *rows]}
    table = build_table(job(tmp_path, [one, *two, *partial], "checkpoints", spec), PAPER)
    assert [row[3] for row in table.rows] == ["50.00 (s.e. 20.41)", "25.00 (s.e. 12.50)", "50.00 ± 14.14",
                                              "40.00 (s.e. 10.00) (1/2)"]
    assert any("(s.e. x)" in note for note in table.notes)
    summary = build_table(job(tmp_path, [one], "summary", {"benchmarks": ["math500"]}), PAPER)
    assert dict(zip(summary.columns, summary.rows[0]))["MATH500 final"] == "25.00 (s.e. 12.50)"


@pytest.mark.parametrize("stderr", [-0.1, "0.1", float("nan"), True])
def test_an_evaluation_whose_stderr_is_not_a_number_at_least_0_is_an_error_naming_the_file(tmp_path, stderr):
    run = plan.Run("toy", "srt", 8, 1.0, 0)
    write_run(tmp_path, run, [0.3, 0.6], {})
    write_score(tmp_path, run, "final", 0.5, stderr)
    path = Path(plan.eval_dir(str(tmp_path), run, "final")) / "math500.json"
    with pytest.raises(ValueError) as err:
        build_table(job(tmp_path, [run], "summary", {"benchmarks": ["math500"]}), PAPER)
    assert str(err.value) == f"{path}: stderr = {stderr!r}; a standard error is null or a finite number >= 0"
