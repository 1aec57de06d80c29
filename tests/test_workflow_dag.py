"""The DAG that the configurations build (dry runs), the config checks that run before any job, and drop-in
baselines. Job counts are computed here by hand from each grid, not by the workflow's own code."""
import itertools

import pytest
import yaml

from test_workflow_helpers import REPO, copy_workflow, job_counts, planned_jobs, snakemake, tiny_config, write_config


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return copy_workflow(tmp_path_factory.mktemp("workflow"))


def refused_before_any_job(workdir, config: dict, name: str) -> str:
    """The output of a dry run of ``config`` that must stop before planning any job."""
    write_config(workdir / f"{name}.yaml", config)
    result = snakemake(workdir, "-n", "--cores", "1", "--configfile", f"{name}.yaml")
    assert result.returncode != 0, result.stdout[-3000:]
    assert "rule " not in result.stdout  # no job was planned
    return result.stdout


def product(models, methods, Gs, Ts):
    return set(itertools.product(models, methods, Gs, Ts))


def test_paper_config_builds_the_papers_grid(workdir):
    # The paper's runs, one set per table/figure (seed 0 only), straight from the paper's description.
    table1 = product(["qwen3_4b"], ["srt"], [16], [0.8, 1.1, 1.2]) | product(["qwen3_4b"], ["srt"], [16, 32, 64, 128], [1.1])
    table2 = product(["qwen3_4b"], ["srt", "mgrpo", "mgrpo_iqr"], [32], [1.1])
    table3 = product(["qwen3_4b"], ["mgrpo_iqr"], [8, 16, 32, 256], [1.1])
    figure4 = product(["qwen3_1.7b", "qwen3_4b", "qwen3_8b"], ["mgrpo"], [32], [1.1])
    figure5 = product(["qwen2.5_3b", "qwen2.5_7b"], ["srt", "intuitor"], [32], [1.1])
    trained = table1 | table2 | table3 | figure4 | figure5
    evaluated = table1 | table2 | table3  # best + final each; figures 4 and 5 are curves only
    assert len(trained) == 17 and len(evaluated) == 11
    expected = {
        "train": len(trained),
        "evaluate_checkpoint": 2 * len(evaluated),
        "evaluate_base_model": 1,  # Qwen3-4B-Base, "Original" in Table 2
        "download_base_model": 5,
        "prepare_math_source": 1, "verl_data": 1, "prepare_benchmarks": 1,
        "table_table1": 1, "table_table2": 1, "table_table3": 1, "table_summary": 1,
        "figure_figure1": 1, "figure_figure2": 1, "figure_figure4": 1, "figure_figure5": 1,
        "summary_report": 1, "all": 1,
    }
    assert planned_jobs(workdir, "--configfile", "config/paper.yaml") == expected


def test_the_paper_configs_validation_split_leaves_out_the_math500_problems(workdir):
    # best/ is the step with the highest validation accuracy, on MATH's test split, of which MATH-500 is a
    # subset; Table 2 reports SRT_Best on MATH500. The data step must take those problems out.
    result = snakemake(workdir, "results/data/math/test.parquet", "-n", "-p", "--cores", "1",
                       "--configfile", "config/paper.yaml")
    assert result.returncode == 0, result.stdout[-3000:]
    assert "rule prepare_benchmarks" in result.stdout  # the benchmark files come first
    command = next(line for line in result.stdout.splitlines() if "mgrpo verl-prepare-data" in line)
    assert "--exclude-problems data/benchmarks/math500.jsonl" in command


def test_default_config_builds_the_toy_grid(workdir):
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    runs = sum(len(e["models"]) * len(e["methods"]) * len(e["G"]) * len(e["T"]) * len(e["seeds"])
               for e in config["experiments"])
    assert runs == 12  # 5 methods x 2 seeds at one (G, T) + SRT at a second G x 2 seeds
    counts = planned_jobs(workdir)
    assert counts["train"] == runs
    assert counts["evaluate_checkpoint"] == 2 * runs
    assert counts["evaluate_base_model"] == 1
    assert counts["toy_data"] == counts["pretrain_base_model"] == 1
    assert counts["summary_report"] == 1


def test_train_rule_calls_the_contract_command(workdir):
    result = snakemake(workdir, "-n", "-p", "--cores", "1", "results/runs/toy/mgrpo/G8_T1.0_s1/metrics.jsonl")
    assert result.returncode == 0, result.stdout[-3000:]
    command = next(line for line in result.stdout.splitlines() if "mgrpo train" in line)
    for part in ("mgrpo train --backend cpu --method mgrpo --base-model results/base_models/toy",
                 "--data results/data/toy --out results/runs/toy/mgrpo/G8_T1.0_s1",
                 "--work work/runs/toy/mgrpo/G8_T1.0_s1", "--G 8 --T 1.0 --seed 1", "--momentum 0.99",
                 "--iqr-k 0.75"):
        assert part in command


def test_code_options_reach_the_evaluate_command_and_a_misspelt_one_fails_before_any_job(workdir):
    config = tiny_config()
    config["evaluation"]["code_options"] = {"allow_weak_sandbox": True, "release_version": "release_v5"}
    write_config(workdir / "code.yaml", config)
    result = snakemake(workdir, "-n", "-p", "--cores", "1", "--configfile", "code.yaml")
    assert result.returncode == 0, result.stdout[-3000:]
    command = next(line for line in result.stdout.splitlines() if "mgrpo evaluate" in line)
    assert "--code-option allow_weak_sandbox=true --code-option 'release_version=\"release_v5\"'" in command
    config["evaluation"]["code_options"] = {"allow_weak_sandbx": True}
    write_config(workdir / "code_typo.yaml", config)
    result = snakemake(workdir, "-n", "--cores", "1", "--configfile", "code_typo.yaml")
    assert result.returncode != 0 and "'allow_weak_sandbx' was unexpected" in result.stdout


def test_schema_violation_fails_before_any_job_naming_key_and_reason(workdir):
    config = tiny_config()
    config["experiments"][0]["G"] = [1]
    output = refused_before_any_job(workdir, config, "bad_g")
    assert "1 is less than the minimum of 2" in output
    assert "['experiments'][0]['G'][0]" in output

    config = tiny_config(seeds=(2**31,))  # beyond what numpy, torch and vLLM take as a seed
    write_config(workdir / "bad_seed.yaml", config)
    result = snakemake(workdir, "-n", "--cores", "1", "--configfile", "bad_seed.yaml")
    assert result.returncode != 0 and "2147483648 is greater than the maximum of 2147483647" in result.stdout

    config = tiny_config()
    config["evaluation"]["checkpoint"] = ["best"]  # typo of `checkpoints`
    write_config(workdir / "typo.yaml", config)
    result = snakemake(workdir, "-n", "--cores", "1", "--configfile", "typo.yaml")
    assert result.returncode != 0
    assert "'checkpoint' was unexpected" in result.stdout

    # a misspelt table key gave a table without its benchmark columns, and no error
    config = tiny_config()
    config["analysis"]["tables"]["toy_summary"]["benchmark"] = config["analysis"]["tables"]["toy_summary"].pop(
        "benchmarks")
    write_config(workdir / "table_typo.yaml", config)
    result = snakemake(workdir, "-n", "--cores", "1", "--configfile", "table_typo.yaml")
    assert result.returncode != 0 and "'benchmark' was unexpected" in result.stdout

    # resource keys the SLURM plugin does not know would be dropped silently (no GPU for the job)
    for stage, resources, message in (("train", {"gpus": 8}, "'gpus' is not one of"),
                                      ("evaluation", {"gpu": 1}, "'evaluation' was unexpected")):
        config = tiny_config(resources={stage: resources})
        write_config(workdir / "resources.yaml", config)
        result = snakemake(workdir, "-n", "--cores", "1", "--configfile", "resources.yaml")
        assert result.returncode != 0 and message in result.stdout, result.stdout[-2000:]


def test_config_values_that_would_fail_a_late_job_fail_before_any_job_naming_the_key(workdir):
    cases = [
        # a quoted count: Snakemake took it, the SLURM plugin refused it at submission ("must be an integer")
        (["resources", "train", "cpus_per_task"], "64", "'64' is not of type 'integer'",
         "['resources']['train']['cpus_per_task']"),
        # ... or the GPU check compared "8" with 8 and reported them unequal
        (["resources", "train", "gpu"], "8", "'8' is not of type 'integer'", "['resources']['train']['gpu']"),
        # a math data set without its source directory: a bare KeyError in data.smk
        (["data"], {"kind": "math"}, "'source' is a required property", "On instance['data']"),
        # a misspelt figure selector: the figure job, last in the DAG, failed on it
        (["analysis", "figures", "toy_curves", "select"], {"methods": ["srt"]}, "'methods' was unexpected",
         "['analysis']['figures']['toy_curves']['select']"),
        # a misspelt selector value: the figure was drawn without those runs, and no error
        (["analysis", "figures", "toy_curves", "select"], {"method": ["srt", "mgrpo_iq"]},
         "mgrpo_iq matches no run of the grid", "config analysis.figures.toy_curves.select.method"),
        # a table row no job fills: "missing" in the table however often the workflow runs
        (["analysis", "tables", "table2", "rows"], [{"label": "SRT_Final", "method": "srt", "G": 8, "T": 1.0,
                                                     "checkpoint": "final"}],
         "no run toy/srt/G8_T1.0 in the grid", "config analysis.tables.table2.rows[0] (SRT_Final)"),
    ]
    for path, value, message, where in cases:
        config = tiny_config()
        config["resources"] = {"train": {}}
        parent = config
        for key in path[:-1]:
            parent = parent[key]
        parent[path[-1]] = value
        output = refused_before_any_job(workdir, config, "late")
        assert message in output and where in output, output[-2000:]
    # units stay strings: memory and time with a unit are what Snakemake parses
    config = tiny_config(resources={"train": {"mem": "16GB", "runtime": "48h", "cpus_per_task": 4}})
    write_config(workdir / "units.yaml", config)
    assert snakemake(workdir, "-n", "--cores", "1", "--configfile", "units.yaml").returncode == 0


def test_a_small_temperature_is_trained_in_its_fixed_notation_folder(workdir):
    # T = 1e-05 was written 'T1e-05' in the run's path, which the T wildcard (digits.digits) never matches
    write_config(workdir / "cold.yaml", tiny_config(methods=("srt",), T=(0.00001,)))
    result = snakemake(workdir, "-n", "-p", "--cores", "1", "--configfile", "cold.yaml")
    assert result.returncode == 0, result.stdout[-3000:]
    command = next(line for line in result.stdout.splitlines() if "mgrpo train" in line)
    assert "--out results/runs/toy/srt/G4_T0.00001_s0" in command and "--T 0.00001 " in command


def test_paper_config_with_gpus_that_the_cluster_would_not_give_fails_before_any_job(workdir):
    paper = yaml.safe_load((REPO / "config" / "paper.yaml").read_text())
    for change, message in (
            # --nodes=2 --gpus=8 may come as 4 + 4 GPUs, and verl uses those of its own node only
            (lambda c: c["resources"]["train"].update(nodes=2), "config resources.train.nodes = 2, but each job"),
            # vLLM evaluation jobs without a GPU
            (lambda c: c["resources"]["evaluate"].pop("gpu"), "config resources.evaluate.gpu: missing, but "
                                                               "evaluation.backend vllm runs on GPUs")):
        config = yaml.safe_load(yaml.safe_dump(paper))
        change(config)
        output = refused_before_any_job(workdir, config, "gpus")
        assert message in output, output[-2000:]


def test_unknown_method_names_the_registered_ones(workdir):
    write_config(workdir / "unknown.yaml", tiny_config(methods=("srt", "no_such_method")))
    result = snakemake(workdir, "-n", "--cores", "1", "--configfile", "unknown.yaml")
    assert result.returncode != 0
    assert "unknown method(s) no_such_method" in result.stdout
    for registered in ("srt", "intuitor", "mgrpo", "mgrpo_iqr", "ground_truth"):
        assert registered in result.stdout.split("registered methods:")[1]


def test_unknown_benchmark_fails_before_any_job_naming_the_registered_ones(workdir):
    # a misspelt benchmark passed the DAG and failed only in the first evaluation job, after data and base model
    config = tiny_config()
    config["evaluation"]["benchmarks"] = ["toy", "math_500"]
    output = refused_before_any_job(workdir, config, "bench")
    assert "config evaluation.benchmarks: unknown benchmark(s) math_500; registered benchmarks:" in output
    assert "math500" in output.split("registered benchmarks:")[1]


def test_a_benchmark_the_toy_data_does_not_hold_fails_before_any_job(workdir):
    # it passed the DAG; every evaluate job then failed, after all the training, with "data file not found:
    # results/data/toy/math500.jsonl"
    config = tiny_config()
    config["evaluation"]["benchmarks"] = ["toy", "math500"]
    output = refused_before_any_job(workdir, config, "toybench")
    assert ("config evaluation.benchmarks: math500 cannot be evaluated with data.kind: toy (every evaluate job "
            "reads the toy data folder, which holds the toy task only); use data.kind: math, whose evaluate jobs "
            "read evaluation.data_dir") in output, output[-2000:]


def test_editing_the_momentum_or_iqr_k_changes_only_the_commands_of_the_methods_that_use_them(workdir):
    # Snakemake reruns a job whose params changed: a new training.momentum re-ran SRT's runs as well
    def commands(config):
        write_config(workdir / "m.yaml", config)
        result = snakemake(workdir, "-n", "-p", "--cores", "1", "--configfile", "m.yaml")
        assert result.returncode == 0, result.stdout[-3000:]
        lines = [line for line in result.stdout.splitlines() if "mgrpo train" in line]
        return {line.split("--method ")[1].split()[0]: line for line in lines}

    before = commands(tiny_config(methods=("srt", "mgrpo", "mgrpo_iqr")))
    after = commands(tiny_config(methods=("srt", "mgrpo", "mgrpo_iqr"),
                                 training={"momentum": 0.9, "iqr_k": 1.5, "settings": {}}))
    assert after["srt"] == before["srt"] and "--momentum 0.99 --iqr-k 0.75" in after["srt"]
    assert "--momentum 0.9 --iqr-k 0.75" in after["mgrpo"]
    assert "--momentum 0.9 --iqr-k 1.5" in after["mgrpo_iqr"]


def test_misspelt_training_setting_fails_before_any_job_naming_it(workdir):
    # it passed the DAG and failed only when the first train job read it, after data and base model
    config = tiny_config()
    config["training"]["settings"] = {"steps": 3, "learning_rate": 0.001}
    output = refused_before_any_job(workdir, config, "settings")
    assert "unknown setting(s) 'learning_rate' for CpuSettings; known settings:" in output


def test_misspelt_pretrain_option_fails_before_any_job_naming_it(workdir):
    # it passed the DAG and failed only when the pretrain job started, after the data job
    config = tiny_config()
    config["base_models"]["toy"]["pretrain"]["options"] = {"max_stepz": 10}
    output = refused_before_any_job(workdir, config, "options")
    assert "config base_models.toy.pretrain.options" in output
    assert "unrecognized arguments: --max-stepz 10" in output


def test_paper_config_asking_for_fewer_gpus_than_verl_uses_fails_before_any_job(workdir):
    paper = yaml.safe_load((REPO / "config" / "paper.yaml").read_text())
    paper["resources"]["train"]["gpu"] = 4  # training.settings.n_gpus_per_node stays 8
    write_config(workdir / "four_gpus.yaml", paper)
    result = snakemake(workdir, "-n", "--cores", "1", "--configfile", "four_gpus.yaml")
    assert result.returncode != 0
    assert "resources.train.gpu = 4, but method intuitor's verl run uses n_gpus_per_node = 8" in result.stdout


def test_paper_config_with_a_misspelt_or_mistyped_verl_key_fails_before_any_job(workdir):
    pytest.importorskip("verl")  # without verl, the plan is made and the train job checks its config
    paper = yaml.safe_load((REPO / "config" / "paper.yaml").read_text())
    paper["training"]["settings"]["actor_rollout_ref.actor.optim.lrr"] = 1e-5
    out = refused_before_any_job(workdir, paper, "misspelt_verl_key")
    assert "Could not override 'actor_rollout_ref.actor.optim.lrr'" in out, out[-3000:]
    del paper["training"]["settings"]["actor_rollout_ref.actor.optim.lrr"]
    paper["methods"] = {**(paper.get("methods") or {}), "mgrpo_iqr": {"settings": {"data.train_batch_size": "eight"}}}
    out = refused_before_any_job(workdir, paper, "mistyped_verl_key")
    assert ("with methods.mgrpo_iqr.settings), composed for run qwen3_4b/mgrpo_iqr/" in out
            and "data.train_batch_size = 'eight' is not an integer" in out), out[-3000:]


BASELINE_PY = '''
from mgrpo.core import Method, register_method

register_method(Method("my_baseline", reward="agreement", description="test drop-in"), origin=__file__)
'''
BASELINE_SMK = '''
rule my_baseline_asset:
    output:
        f"{R}/my_baseline/asset.txt",
    shell:
        "echo asset > {output}"
'''


def test_a_baseline_dropped_into_baselines_is_picked_up(tmp_path):
    workdir = copy_workflow(tmp_path / "clone")
    (workdir / "baselines" / "my_baseline.py").write_text(BASELINE_PY)
    (workdir / "baselines" / "my_baseline.smk").write_text(BASELINE_SMK)
    write_config(workdir / "with_baseline.yaml", tiny_config(methods=("srt", "my_baseline")))
    result = snakemake(workdir, "-n", "-p", "--cores", "1", "--configfile", "with_baseline.yaml")
    assert result.returncode == 0, result.stdout[-3000:]
    assert job_counts(result.stdout)["train"] == 2  # one dry run for the plan and its commands
    assert "--method my_baseline" in result.stdout
    # The baseline's own rules are part of the workflow too.
    result = snakemake(workdir, "results/my_baseline/asset.txt", "-n", "--cores", "1")
    assert result.returncode == 0, result.stdout[-3000:]
    assert "rule my_baseline_asset" in result.stdout


BASELINE_TRAIN_SMK = '''
use rule train as my_baseline_train with:
    wildcard_constraints:
        method="my_baseline",
    resources:
        mem_mb=1234,

ruleorder: my_baseline_train > train
'''


def test_a_baseline_can_train_its_runs_with_its_own_copy_of_the_train_rule(tmp_path):
    # docs/workflow.md's pattern: the baseline's runs go to its copy (here: other resources), the others stay
    workdir = copy_workflow(tmp_path / "clone")
    (workdir / "baselines" / "my_baseline.py").write_text(BASELINE_PY)
    (workdir / "baselines" / "my_baseline.smk").write_text(BASELINE_TRAIN_SMK)
    write_config(workdir / "with_baseline.yaml", tiny_config(methods=("srt", "my_baseline")))
    result = snakemake(workdir, "-n", "--cores", "1", "--configfile", "with_baseline.yaml")
    assert result.returncode == 0, result.stdout[-3000:]
    blocks = {block.split("rule ", 1)[1].split(":", 1)[0]: block
              for block in result.stdout.split("\n\n") if "\nrule " in block or block.startswith("rule ")}
    assert "runs/toy/my_baseline/" in blocks["my_baseline_train"] and "mem_mb=1234" in blocks["my_baseline_train"]
    assert "runs/toy/srt/" in blocks["train"] and "mem_mb=1234" not in blocks["train"]


# The one lint left, on purpose: the workflow runs in one environment (environment.yml, or the CPU install),
# activated before snakemake and inherited by every job, not in per-rule conda environments.
ACCEPTED_LINTS = {"Specify a conda environment or container for each rule."}


@pytest.mark.parametrize("configfile", [None, "config/paper.yaml"])
def test_snakemake_lint_finds_nothing_but_the_per_rule_environment(workdir, configfile):
    result = snakemake(workdir, "--lint", *(["--configfile", configfile] if configfile else []))
    lints = {line.strip()[2:].rstrip(":") for line in result.stdout.splitlines() if line.startswith("    * ")}
    assert ACCEPTED_LINTS <= lints, result.stdout[-3000:]  # the linter ran and saw the rules
    assert lints == ACCEPTED_LINTS, result.stdout[-6000:]


def test_a_benchmark_or_seed_named_twice_fails_before_any_job_naming_the_list(workdir):
    config = tiny_config()
    config["evaluation"]["benchmarks"] = ["toy", "toy"]  # was: "Duplicate output file pattern in rule ..."
    out = refused_before_any_job(workdir, config, "twice")
    assert "has non-unique elements" in out and "benchmarks" in out, out[-2000:]
    config = tiny_config()
    config["experiments"][0]["seeds"] = [0, 0]
    out = refused_before_any_job(workdir, config, "seeds")
    assert "has non-unique elements" in out and "seeds" in out, out[-2000:]


def test_one_folder_for_results_and_work_and_numbers_that_are_not_finite_fail_before_any_job(workdir):
    cases = [
        # each train job refused: "output folder ... would replace the work folder"
        ({"work_dir": "results"}, "config work_dir ('results') is the same folder as results_dir ('results')"),
        # a MissingInputException for the run folder G4_TNaN.0_s0
        ({"experiments": [{"name": "hot", "models": ["toy"], "methods": ["srt"], "G": [4], "T": [float("nan")],
                           "seeds": [0]}]}, "config experiments[hot].T: nan is not a finite temperature"),
    ]
    for overrides, message in cases:
        output = refused_before_any_job(workdir, tiny_config(**overrides), "apart")
        assert message in output, output[-2000:]
    config = tiny_config()
    config["evaluation"]["temperature"] = float("inf")  # passed the schema and reached every evaluate job
    assert "config evaluation.temperature: inf is not a finite number" in refused_before_any_job(workdir, config, "inf")


def test_an_empty_path_fails_before_any_job_naming_the_key(workdir):
    # results_dir "" gave paths from the root (/tables/...) and a MissingInputException naming none of the keys
    for key in ("results_dir", "work_dir"):
        output = refused_before_any_job(workdir, tiny_config(**{key: ""}), "empty")
        assert "'' should be non-empty" in output and f"On instance['{key}']" in output, output[-2000:]
    config = tiny_config()
    config["base_models"]["toy"] = {"path": ""}
    output = refused_before_any_job(workdir, config, "empty")
    assert "'' should be non-empty" in output and "On instance['base_models']['toy']['path']" in output


def test_a_malformed_paper_numbers_file_fails_before_any_job_naming_it(tmp_path):
    # it passed the dry run, and each table job then stopped on a yaml.parser.ParserError traceback
    workdir = copy_workflow(tmp_path / "clone")
    paper = workdir / "analysis" / "paper_numbers.yaml"
    lines = len(paper.read_text().splitlines())
    paper.write_text(paper.read_text() + "tables:\n  table2: {rows: [\n")
    output = refused_before_any_job(workdir, tiny_config(), "paper")
    assert f"analysis/paper_numbers.yaml:{lines + 3}: not YAML (" in output, output[-2000:]
    config = tiny_config()
    config["analysis"]["tables"] = {}  # no table reads the file
    write_config(workdir / "no_tables.yaml", config)
    assert snakemake(workdir, "-n", "--cores", "1", "--configfile", "no_tables.yaml").returncode == 0


def test_a_grid_tables_paper_row_without_its_cell_fails_before_any_job(tmp_path):
    # grid_paper_rows refused it only in the table job, after every training and evaluation job had run
    workdir = copy_workflow(tmp_path / "clone")
    paper = workdir / "analysis" / "paper_numbers.yaml"
    numbers = yaml.safe_load(paper.read_text())
    numbers["tables"]["table1"]["rows"] = [{"label": "16, 0.8", "values": {"math500_best": 0.5}}]
    paper.write_text(yaml.safe_dump(numbers))
    config = tiny_config(methods=("srt",))
    config["analysis"]["tables"] = {"table1": {"kind": "grid", "model": "toy", "method": "srt", "cells": [[4, 1.0]],
                                               "benchmarks": ["toy"]}}
    config["analysis"]["figures"] = {}
    output = refused_before_any_job(workdir, config, "grid_paper")
    assert ("paper numbers: tables.table1.rows[0] (16, 0.8): a grid table's paper row needs numeric G and T keys "
            "(its cell), got G = None, T = None") in output, output[-2000:]


def test_a_results_or_work_dir_spelt_with_a_trailing_slash_or_dot_plans_the_same_jobs_and_paths(workdir):
    # results_dir: "results/" gave paths results//runs/... (123 "contains double '/'" warnings) and then a
    # MissingInputException in rule table_toy_summary; "./results" gave 123 "starts with './'" warnings
    for results, work in (("results/", "work/"), ("./results", "./work")):
        write_config(workdir / "slash.yaml", tiny_config(results_dir=results, work_dir=work))
        result = snakemake(workdir, "-n", "-p", "--cores", "1", "--configfile", "slash.yaml")
        assert result.returncode == 0, result.stdout[-3000:]
        assert "double '/'" not in result.stdout and "starts with './'" not in result.stdout
        command = next(line for line in result.stdout.splitlines() if "mgrpo train" in line and "--seed 0" in line)
        assert " --out results/runs/toy/" in command and " --work work/runs/toy/" in command, command
        # 2 runs: 1 toy_data, 1 pretrain, 2 train, 4 + 1 evaluations, 2 tables, 1 figure, 1 report, all
        assert "\ntotal                     14\n" in result.stdout, result.stdout[-3000:]
