"""Re-run behaviour of the DAG, with a stand-in `mgrpo` that only writes the contract's files: a finished
workflow does nothing again; editing one method's config re-runs that method's jobs and the analysis only;
an interrupted training job finds its work folder again (the trainer's own resume is tested with the real CLI
in test_workflow_toy_e2e.py)."""
import json

import pytest
import yaml

from test_workflow_helpers import (copy_workflow, environment, fake_log, install_fake_mgrpo, job_counts,
                                   planned_jobs, snakemake, tiny_config, write_config)

ANALYSIS_JOBS = {"table_toy_summary", "table_table2", "figure_toy_curves", "summary_report", "all"}


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A tiny toy workflow (srt + mgrpo_iqr, one seed) run to the end with the stand-in mgrpo."""
    root = tmp_path_factory.mktemp("reruns")
    workdir = copy_workflow(root / "clone")
    bin_dir = install_fake_mgrpo(root / "bin")
    env = environment(bin_dir, FAKE_MGRPO_LOG=str(root / "mgrpo.jsonl"))
    write_config(workdir / "tiny.yaml", tiny_config(html=True))
    result = snakemake(workdir, "--cores", "2", "--configfile", "tiny.yaml", env=env)
    assert result.returncode == 0, result.stdout[-4000:]
    return workdir, env, root


def test_the_run_produced_every_stage(finished):
    workdir, env, root = finished
    results = workdir / "results"
    for name in ("toy_summary", "table2"):
        for suffix in ("md", "tex", "csv"):
            assert (results / "tables" / f"{name}.{suffix}").is_file()
    assert (results / "figures" / "toy_curves.png").is_file() and (results / "figures" / "toy_curves.pdf").is_file()
    report = (results / "report.md").read_text()
    assert "## table2" in report and "toy_curves.png" in report
    html = results / "report.html"
    assert html.is_file()
    html_text = html.read_text()
    for item in ("toy_curves.png", "table2.csv", "toy_summary.csv"):  # every table and figure, with captions
        assert item in html_text
    # The stand-in's SRT curve peaks (0.70 at step 20) then crashes: the table says so.
    summary = (results / "tables" / "toy_summary.md").read_text()
    assert "| toy | srt | 4 | 1.0 | 0 | 30.00 | 70.00 (20) | 10.00 (40) ↓ | yes (step 30) |" in summary
    commands = [argv[0] for argv in fake_log(root / "mgrpo.jsonl")]
    assert commands.count("train") == 2 and commands.count("evaluate") == 5


def test_a_finished_workflow_has_nothing_to_do(finished):
    workdir, env, _ = finished
    assert planned_jobs(workdir, "--configfile", "tiny.yaml", env=env) == {}


def test_editing_one_methods_config_reruns_only_that_method_and_the_analysis(finished):
    workdir, env, _ = finished
    config = tiny_config(html=True)
    config["methods"]["mgrpo_iqr"] = {"iqr_k": 1.5}
    write_config(workdir / "edited.yaml", config)
    result = snakemake(workdir, "-n", "--cores", "1", "--configfile", "edited.yaml", env=env)
    assert result.returncode == 0, result.stdout[-3000:]
    counts = job_counts(result.stdout)  # the dry run planned_jobs would make again
    assert counts.pop("train") == 1
    assert counts.pop("evaluate_checkpoint") == 2  # best and final of that run
    assert set(counts) == ANALYSIS_JOBS
    assert "wildcards: model=toy, method=mgrpo_iqr" in result.stdout
    assert "method=srt" not in result.stdout


def test_an_interrupted_training_job_finds_its_work_folder_again(tmp_path):
    workdir = copy_workflow(tmp_path / "clone")
    bin_dir = install_fake_mgrpo(tmp_path / "bin")
    config = tiny_config(methods=("srt",))
    config["analysis"]["tables"] = {}
    config["analysis"]["figures"] = {}
    write_config(workdir / "one.yaml", config)
    target = "results/runs/toy/srt/G4_T1.0_s0/metrics.jsonl"
    env = environment(bin_dir, FAKE_MGRPO_LOG=str(tmp_path / "log.jsonl"), FAKE_MGRPO_INTERRUPT="1")
    first = snakemake(workdir, target, "--cores", "1", "--configfile", "one.yaml", env=env)
    assert first.returncode != 0
    work = workdir / "work" / "runs" / "toy" / "srt" / "G4_T1.0_s0"
    assert (work / "step_000002").is_dir()  # Snakemake removed the failed outputs, not the work folder
    env = environment(bin_dir, FAKE_MGRPO_LOG=str(tmp_path / "log.jsonl"), FAKE_MGRPO_INTERRUPT="1")
    second = snakemake(workdir, target, "--cores", "1", "--configfile", "one.yaml", env=env)
    assert second.returncode == 0, second.stdout[-3000:]
    run = json.loads((workdir / "results/runs/toy/srt/G4_T1.0_s0/run.json").read_text())
    assert run["resumed_from"] == 2
    trains = [argv for argv in fake_log(tmp_path / "log.jsonl") if argv[0] == "train"]
    assert len(trains) == 2 and trains[0] == trains[1]  # the same command, the same --work


def test_the_html_report_sees_command_line_config_overrides(tmp_path):
    # the report is a second snakemake call: it must get --config overrides too, not only the config files
    workdir = copy_workflow(tmp_path / "clone")
    env = environment(install_fake_mgrpo(tmp_path / "bin"), FAKE_MGRPO_LOG=str(tmp_path / "mgrpo.jsonl"))
    write_config(workdir / "tiny.yaml", tiny_config(methods=("srt",), html=True))
    result = snakemake(workdir, "--cores", "2", "--configfile", "tiny.yaml", "--config", "results_dir=alt", env=env)
    assert result.returncode == 0, result.stdout[-4000:]
    assert "the HTML report failed" not in result.stdout
    assert (workdir / "alt" / "report.html").is_file() and not (workdir / "results").exists()


def test_a_single_target_run_writes_no_html_report(tmp_path):
    # the report is of the whole grid: after `snakemake <one run's metrics>` it failed (tables missing), said so,
    # and overwrote the last full run's report_config.yaml
    workdir = copy_workflow(tmp_path / "clone")
    env = environment(install_fake_mgrpo(tmp_path / "bin"), FAKE_MGRPO_LOG=str(tmp_path / "mgrpo.jsonl"))
    write_config(workdir / "tiny.yaml", tiny_config(methods=("srt",), html=True))
    target = "results/runs/toy/srt/G4_T1.0_s0/metrics.jsonl"
    result = snakemake(workdir, target, "--cores", "1", "--configfile", "tiny.yaml", env=env)
    assert result.returncode == 0, result.stdout[-4000:]
    assert (workdir / target).is_file()
    assert "the HTML report failed" not in result.stdout
    assert not (workdir / "results" / "logs" / "report_config.yaml").exists()
    assert not (workdir / "results" / "report.html").exists()


def test_folders_with_spaces_reach_every_command_as_one_argument(tmp_path):
    # results_dir "my results" reached the shell unquoted: `mgrpo toy-data --out my results/data/toy` failed and
    # left a stray file `my` in the working directory
    workdir = copy_workflow(tmp_path / "a clone")
    env = environment(install_fake_mgrpo(tmp_path / "bin"), FAKE_MGRPO_LOG=str(tmp_path / "mgrpo.jsonl"))
    config = tiny_config(methods=("srt",), html=True, results_dir="my results", work_dir="my work")
    write_config(workdir / "spaces.yaml", config)
    result = snakemake(workdir, "--cores", "2", "--configfile", "spaces.yaml", env=env)
    assert result.returncode == 0, result.stdout[-4000:]
    assert "the HTML report failed" not in result.stdout
    assert sorted(p.name for p in workdir.iterdir() if p.name.startswith("my")) == ["my results", "my work"]
    results = workdir / "my results"
    for path in ("tables/table2.md", "figures/toy_curves.png", "report.md", "report.html", "logs/toy_data.log"):
        assert (results / path).is_file(), path
    assert "toy_curves.png" in (results / "report.md").read_text()
    calls = {argv[0]: argv for argv in fake_log(tmp_path / "mgrpo.jsonl")}
    assert calls["toy-data"][1:3] == ["--out", "my results/data/toy"]
    train = calls["train"]
    assert train[train.index("--work") + 1] == "my work/runs/toy/srt/G4_T1.0_s0"
    evaluate = calls["evaluate"]
    assert evaluate[evaluate.index("--cache") + 1].startswith("my work/eval/toy/")


def test_adding_an_evaluation_benchmark_retrains_nothing(tmp_path):
    # The training data leave out MATH-500's problems, so verl_data runs after prepare_benchmarks; but a new
    # benchmark in the list re-runs only prepare_benchmarks (its record): the training data, and with them every
    # train job (which --restart-on-change would then start afresh, the data's files being new), stay as they are.
    workdir = copy_workflow(tmp_path / "clone")
    env = environment(install_fake_mgrpo(tmp_path / "bin"), FAKE_MGRPO_LOG=str(tmp_path / "mgrpo.jsonl"))
    (workdir / "data" / "MATH").mkdir(parents=True)
    (workdir / "models" / "local").mkdir(parents=True)
    (workdir / "models" / "local" / "config.json").write_text("{}")
    config = yaml.safe_load((workdir / "config" / "paper.yaml").read_text())
    config["base_models"] = {"local": {"path": "models/local"}}
    config["experiments"] = [{"name": "one", "models": ["local"], "methods": ["srt"], "G": [32], "T": [1.1],
                              "seeds": [0], "checkpoints": []}]
    config["evaluation"].update(benchmarks=["math500", "aime24"], base_model=False)
    config["analysis"] = {"tables": {}, "figures": {}}
    config["report"] = {"html": False}
    write_config(workdir / "one.yaml", config)
    target = "results/runs/local/srt/G32_T1.1_s0/metrics.jsonl"
    first = snakemake(workdir, target, "--cores", "1", "--configfile", "one.yaml", env=env)
    assert first.returncode == 0, first.stdout[-3000:]
    assert "--exclude-problems data/benchmarks/math500.jsonl" in first.stdout

    config["evaluation"]["benchmarks"].append("aime25")
    write_config(workdir / "more.yaml", config)
    assert planned_jobs(workdir, target, "--configfile", "more.yaml", env=env) == {"prepare_benchmarks": 1}
    # Without MATH-500 the training data do change: those jobs run again.
    config["evaluation"]["benchmarks"] = ["aime24"]
    write_config(workdir / "fewer.yaml", config)
    assert planned_jobs(workdir, target, "--configfile", "fewer.yaml", env=env) == {"verl_data": 1, "train": 1}
