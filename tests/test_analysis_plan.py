"""The grid expansion shared by the Snakefile and the analysis."""
import pytest

from analysis import plan


def config(**extra):
    base = {
        "experiments": [
            {"name": "a", "models": ["m"], "methods": ["srt", "mgrpo"], "G": [8], "T": [1.0], "seeds": [0, 1]},
            {"name": "b", "models": ["m"], "methods": ["srt"], "G": [8, 16], "T": [1], "seeds": [0],
             "checkpoints": ["final"]},
        ],
        "evaluation": {"benchmarks": ["toy"], "checkpoints": ["best", "final"]},
        "base_models": {"m": {"pretrain": {}}},
        "training": {"momentum": 0.99, "iqr_k": 0.75, "settings": {"steps": 50}},
        "methods": {"mgrpo": {"N": 2, "settings": {"lr": 0.01}}},
    }
    base.update(extra)
    return base


def test_runs_named_twice_are_trained_once():
    runs = plan.runs_of(config())
    # a: 2 methods x 2 seeds; b: srt G8 s0 (already in a) + srt G16 s0
    assert len(runs) == 5
    assert plan.Run("m", "srt", 16, 1.0, 0) in runs


def test_evaluated_checkpoints_are_the_union_over_experiments():
    evaluations = plan.evaluations_of(config())
    assert (plan.Run("m", "srt", 8, 1.0, 0), "best") in evaluations  # from a, although b asks for final only
    assert (plan.Run("m", "srt", 16, 1.0, 0), "best") not in evaluations
    assert len(evaluations) == 4 * 2 + 1


def test_train_arguments_carry_only_the_runs_own_method_overrides():
    c = config()
    srt = plan.train_arguments(c, plan.Run("m", "srt", 8, 1.0, 0))
    mgrpo = plan.train_arguments(c, plan.Run("m", "mgrpo", 8, 1.0, 0))
    assert srt == {"momentum": 0.99, "iqr_k": 0.75, "settings": {"steps": 50}}
    assert mgrpo == {"momentum": 0.99, "iqr_k": 0.75, "settings": {"lr": 0.01, "steps": 50}, "N": 2}


def test_momentum_and_iqr_k_reach_only_the_methods_that_use_them():
    # training.momentum reached every run's command: editing it re-ran (and, with --restart-on-change, retrained
    # from scratch) SRT, Intuitor and ground-truth runs, which have no momentum model; training.iqr_k likewise
    # re-ran every method without the IQR filter. Those runs get the trainer's defaults (0.99, 0.75), always.
    c = config(training={"momentum": 0.9, "iqr_k": 1.5, "settings": {}},
               methods={"srt": {"momentum": 0.5, "iqr_k": 2.0}, "mgrpo": {"N": 2}})
    assert plan.train_arguments(c, plan.Run("m", "srt", 8, 1.0, 0)) == {"momentum": 0.99, "iqr_k": 0.75,
                                                                        "settings": {}}
    assert plan.train_arguments(c, plan.Run("m", "mgrpo", 8, 1.0, 0)) == {"momentum": 0.9, "iqr_k": 0.75,
                                                                          "settings": {}, "N": 2}
    assert plan.train_arguments(c, plan.Run("m", "mgrpo_iqr", 8, 1.0, 0)) == {"momentum": 0.9, "iqr_k": 1.5,
                                                                              "settings": {}}
    assert plan.train_arguments(c, plan.Run("m", "srt_iqr", 8, 1.0, 0)) == {"momentum": 0.99, "iqr_k": 1.5,
                                                                            "settings": {}}


def test_flags_and_paths():
    assert plan.settings_flags({"steps": 5, "wandb": False, "x": None}) == [
        "--set", "steps=5", "--set", "wandb=false", "--set", "x=null"]
    assert plan.option_flags({"hidden_size": 64}) == ["--hidden-size", "64"]
    run = plan.Run("qwen3_4b", "mgrpo_iqr", 32, 1.1, 0)
    assert plan.run_dir("results", run) == "results/runs/qwen3_4b/mgrpo_iqr/G32_T1.1_s0"
    assert plan.eval_dir("results", run, "best") == "results/eval/qwen3_4b/mgrpo_iqr/G32_T1.1_s0/best"
    assert plan.eval_dir("results", None, "base", "qwen3_4b") == "results/eval/qwen3_4b/base"
    assert plan.format_temperature(1) == "1.0"


def test_references_are_checked():
    with pytest.raises(ValueError, match=r"unknown method\(s\) nope; registered methods: mgrpo, srt"):
        plan.check_references(config(methods={"nope": {}}), ["srt", "mgrpo"])
    bad = config()
    bad["experiments"][0]["models"] = ["absent"]
    with pytest.raises(ValueError, match="absent not defined under base_models"):
        plan.check_references(bad, ["srt", "mgrpo"])
    same_name = config()
    same_name["experiments"][1]["name"] = "a"
    with pytest.raises(ValueError, match=r"^config experiments: name\(s\) a used by more than one experiment$"):
        plan.check_references(same_name, ["srt", "mgrpo"])


def test_select_runs():
    runs = plan.runs_of(config())
    assert [r.G for r in plan.select_runs(runs, {"method": ["srt"], "seed": [0]})] == [8, 16]
    assert len(plan.select_runs(runs, {"T": [1.0]})) == 5
    with pytest.raises(ValueError, match="unknown field"):
        plan.select_runs(runs, {"temperature": [1.0]})


VERL_DEFAULTS = {"n_gpus_per_node": 8, "nnodes": 1}


def gpu_config(train_gpu=8, settings=None, method_settings=None, evaluation=None, eval_gpu=1):
    c = config(backend="verl", resources={"train": {"gpu": train_gpu}, "evaluate": {"gpu": eval_gpu}})
    c["training"]["settings"] = dict(settings or {})
    c["methods"] = {"mgrpo": {"settings": dict(method_settings or {})}}
    c["evaluation"] = {**c["evaluation"], "backend": "vllm", **(evaluation or {})}
    return c


def test_gpus_asked_for_match_the_gpus_used():
    plan.check_gpu_counts(gpu_config(), VERL_DEFAULTS)  # 8 asked, verl's default 8 used
    plan.check_gpu_counts(gpu_config(4, {"n_gpus_per_node": 4}), VERL_DEFAULTS)
    plan.check_gpu_counts(gpu_config(2, {"trainer.n_gpus_per_node": 2}), VERL_DEFAULTS)  # the verl key too
    plan.check_gpu_counts(gpu_config(eval_gpu=4, evaluation={"tensor_parallel_size": 2, "data_parallel_size": 2}),
                          VERL_DEFAULTS)
    # Not the verl backend / no gpu resource / hf evaluation: nothing to compare.
    cpu = gpu_config(3)
    cpu["backend"] = "cpu"
    cpu["evaluation"]["backend"] = "hf"
    plan.check_gpu_counts(cpu, {})


def test_verl_training_without_a_gpu_request_is_refused():
    # without resources.train.gpu the SLURM job would get no GPU, and fail only after its queue wait
    with pytest.raises(ValueError, match=r"resources.train.gpu: missing, but the verl backend trains on GPUs"):
        plan.check_gpu_counts(config(backend="verl"), VERL_DEFAULTS)


def test_a_gpu_mismatch_names_both_numbers_and_the_method():
    with pytest.raises(ValueError, match=r"resources.train.gpu = 4, but method mgrpo's verl run uses "
                                         r"n_gpus_per_node = 8 \(training.settings \(with methods.mgrpo.settings\)"):
        plan.check_gpu_counts(gpu_config(4, {"n_gpus_per_node": 4}, method_settings={"n_gpus_per_node": 8}),
                              VERL_DEFAULTS)
    with pytest.raises(ValueError, match=r"resources.train.gpu = 4, but method mgrpo's verl run uses n_gpus_per_node = 8"):
        plan.check_gpu_counts(gpu_config(4), VERL_DEFAULTS)  # the default 8
    with pytest.raises(ValueError, match="nnodes = 2, but a train job runs one process on one node"):
        plan.check_gpu_counts(gpu_config(16, {"nnodes": 2}), VERL_DEFAULTS)
    with pytest.raises(ValueError, match=r"resources.evaluate.gpu = 2, but evaluation.tensor_parallel_size x "
                                         r"data_parallel_size = 1 x 1 = 1"):
        plan.check_gpu_counts(gpu_config(eval_gpu=2), VERL_DEFAULTS)


def test_a_run_with_one_policy_rollout_fails_before_any_job_naming_it():
    plan.check_hyperparameters(config())  # mgrpo at G = 8, N = 2
    tiny = config(experiments=[{"name": "t", "models": ["m"], "methods": ["mgrpo"], "G": [2], "T": [1.0],
                                "seeds": [0]}], methods={})  # default N = max(1, 2 // 4) = 1 leaves M = 1
    with pytest.raises(ValueError, match="run m/mgrpo/G2_T1.0_s0: N \\(momentum rollouts\\) must be <= G - 2 = 0"):
        plan.check_hyperparameters(tiny)
    # with momentum_in_loss (verl) the momentum row gets an advantage too: two rows in the loss
    plan.check_hyperparameters(config(experiments=tiny["experiments"],
                                      methods={"mgrpo": {"settings": {"momentum_in_loss": True}}}))


def test_vllm_evaluation_without_a_gpu_request_is_refused():
    # without resources.evaluate.gpu every evaluation job would get no GPU, and vLLM would fail on the node
    c = gpu_config()
    del c["resources"]["evaluate"]
    with pytest.raises(ValueError, match=r"resources.evaluate.gpu: missing, but evaluation.backend vllm runs on GPUs"):
        plan.check_gpu_counts(c, VERL_DEFAULTS)
    c["evaluation"]["backend"] = "hf"  # HF generation also runs on a CPU: no GPU required
    plan.check_gpu_counts(c, VERL_DEFAULTS)


def test_resources_that_sbatch_would_not_get_or_that_span_nodes_are_refused():
    plan.check_resources(config(resources={"train": {"gpu": 8, "nodes": 1, "cpus_per_gpu": 8},
                                           "evaluate": {"gpu": 1, "cpus_per_task": 16}, "pretrain": {}}))
    plan.check_resources(config(resources={"train": {"gres": "gpu:a100:8", "cpus_per_gpu": 8}}))
    # SLURM may give --nodes=2 --gpus=8 as 4 + 4, and a verl run uses the GPUs of its own node only
    with pytest.raises(ValueError, match=r"config resources.train.nodes = 2, but each job of this workflow runs one "
                                         r"process on one node"):
        plan.check_resources(config(resources={"train": {"gpu": 8, "nodes": 2}}))
    # the SLURM plugin takes cpus_per_task first and never sends cpus_per_gpu
    with pytest.raises(ValueError, match=r"config resources.train: both cpus_per_task \(64\) and cpus_per_gpu \(8\)"):
        plan.check_resources(config(resources={"train": {"gpu": 8, "cpus_per_task": 64, "cpus_per_gpu": 8}}))
    # ... and sends cpus_per_gpu only for a job with GPUs
    with pytest.raises(ValueError, match=r"config resources.pretrain.cpus_per_gpu = 4, but the stage asks for no GPU"):
        plan.check_resources(config(resources={"pretrain": {"cpus_per_gpu": 4}}))


def test_tasks_that_would_multiply_a_jobs_cpus_or_idle_are_refused():
    # snakemake-executor-plugin-slurm sends a GPU job's `tasks` (or tasks_per_gpu) as --ntasks-per-gpu: with
    # gpu 8 and cpus_per_task 64 that is 8 tasks x 64 CPUs = 512 CPUs on one node for a job that runs one
    # process (the jobstep's `srun -n1`). SLURM refuses it or the job holds CPUs it never uses.
    for key in ("tasks", "tasks_per_gpu"):
        with pytest.raises(ValueError, match=rf"config resources.train.{key} = 1, but .*--ntasks-per-gpu"):
            plan.check_resources(config(resources={"train": {"gpu": 8, "cpus_per_task": 64, key: 1}}))
    with pytest.raises(ValueError, match=r"config resources.evaluate.tasks = 1, but .*--ntasks-per-gpu"):
        plan.check_resources(config(resources={"evaluate": {"gres": "gpu:1", "tasks": 1}}))
    # a CPU job: --ntasks=4 for one process leaves three tasks' CPUs idle
    with pytest.raises(ValueError, match=r"config resources.pretrain.tasks = 4, but each job of this workflow runs "
                                         r"one process"):
        plan.check_resources(config(resources={"pretrain": {"tasks": 4}}))
    plan.check_resources(config(resources={"pretrain": {"tasks": 1}}))  # what the plugin sends anyway


def test_temperatures_spell_in_fixed_notation_that_the_workflow_wildcard_matches():
    import re

    wildcard = re.compile(r"\d+\.\d+")  # workflow/rules/common.smk's T constraint
    for T, text in ((1, "1.0"), (1.1, "1.1"), (0.8, "0.8"), (1e-05, "0.00001"), (2.5e-07, "0.00000025"),
                    (1e16, "10000000000000000.0")):
        assert plan.format_temperature(T) == text
        assert wildcard.fullmatch(text) and float(text) == T  # the wildcard parsed back is the same run
    run = plan.Run("m", "srt", 8, 1e-05, 0)
    assert plan.run_dir("results", run) == "results/runs/m/srt/G8_T0.00001_s0"


def test_figures_and_tables_that_name_nothing_in_the_grid_fail_before_any_job_naming_the_key():
    # Grid: srt at G 8 and 16 (G 16: final only), mgrpo at G 8; T 1.0; benchmark toy.
    def analysis(tables=None, figures=None):
        return config(analysis={"tables": tables or {}, "figures": figures or {}})

    plan.check_analysis(analysis(
        tables={"t1": {"kind": "grid", "model": "m", "method": "srt", "cells": [[8, 1.0]], "benchmarks": ["toy"]},
                "t2": {"kind": "checkpoints", "model": "m", "benchmarks": ["toy"], "rows": [
                    {"label": "Original", "checkpoint": "base"},
                    {"label": "SRT_Final", "method": "srt", "G": 16, "T": 1, "checkpoint": "final"}]},
                "t3": {"kind": "rollouts", "model": "m", "method": "srt", "T": 1.0, "G": [8, 16],
                       "benchmarks": ["toy"]},
                "s": {"kind": "summary", "benchmarks": ["toy"]}},
        figures={"f": {"select": {"method": ["srt", "mgrpo"], "T": [1]}, "metrics": ["val_acc"]},
                 "all": {"select": {}, "metrics": ["val_acc"]}}))
    cases = [
        # a misspelt method drew a figure without it (or an empty figure), and no error
        (analysis(figures={"f": {"select": {"method": ["srt", "mgrpo_iq"]}, "metrics": ["val_acc"]}}),
         r"config analysis.figures.f.select.method: mgrpo_iq matches no run of the grid \(in the grid: mgrpo, srt\)"),
        (analysis(figures={"f": {"select": {"method": ["mgrpo"], "G": [16]}, "metrics": ["val_acc"]}}),
         r"config analysis.figures.f.select: selects no run of the grid"),
        (analysis(figures={"f": {"select": {"T": [1.05]}, "metrics": ["val_acc"]}}),
         r"config analysis.figures.f.select.T: 1.05 matches no run"),
        # a misspelt metric failed only when the figure was drawn, after every run had trained
        (analysis(figures={"f": {"select": {}, "metrics": ["val_acc", "rewards"]}}),
         r"config analysis.figures.f.metrics: rewards is not a metric of metrics.jsonl \(its metrics: reward, "
         r"agreement, entropy, .*val_acc, val_acc_greedy\)"),
        (analysis(figures={"f": {"select": {}, "metrics": ["step"]}}),  # the x axis, not a curve
         r"config analysis.figures.f.metrics: step is not a metric"),
        # tables whose cells no job produces: "missing" forever, found only at the end of the workflow
        (analysis(tables={"t": {"kind": "grid", "model": "m", "method": "srt", "cells": [[32, 1.0]]}}),
         r"config analysis.tables.t.cells: \[32, 1.0\]: no run m/srt/G32_T1.0 in the grid"),
        (analysis(tables={"t": {"kind": "grid", "model": "m", "method": "srt", "cells": [[16, 1.0]],
                                "benchmarks": ["toy"]}}),
         r"config analysis.tables.t.cells: \[16, 1.0\]: checkpoint best of m/srt/G16_T1.0_s0 is not evaluated"),
        (analysis(tables={"t": {"kind": "checkpoints", "model": "m", "benchmarks": ["toy"], "rows": [
            {"label": "SRT_Best", "method": "srt", "G": 16, "T": 1.0, "checkpoint": "best"}]}}),
         r"config analysis.tables.t.rows\[0\] \(SRT_Best\): checkpoint best of m/srt/G16_T1.0_s0 is not evaluated"),
        (analysis(tables={"t": {"kind": "rollouts", "model": "m", "method": "mgrpo", "T": 1.0, "G": [8, 32],
                                "benchmarks": ["toy"]}}),
         r"config analysis.tables.t.G: 32: no run m/mgrpo/G32_T1.0 in the grid"),
        (analysis(tables={"t": {"kind": "summary", "benchmarks": ["math500"]}}),
         r"config analysis.tables.t.benchmarks: math500 is not in evaluation.benchmarks \(toy\)"),
        # a non-base row without its run: a KeyError deep in the table job
        (analysis(tables={"t": {"kind": "checkpoints", "model": "m", "benchmarks": ["toy"],
                                "rows": [{"label": "X", "checkpoint": "final", "method": "srt"}]}}),
         r"config analysis.tables.t.rows\[0\] \(X\): checkpoint final needs G, T"),
    ]
    for bad, message in cases:
        with pytest.raises(ValueError, match=message):
            plan.check_analysis(bad)
    no_base = analysis(tables={"t": {"kind": "checkpoints", "model": "m", "benchmarks": ["toy"],
                                     "rows": [{"label": "Original", "checkpoint": "base"}]}})
    no_base["evaluation"]["base_model"] = False
    with pytest.raises(ValueError, match=r"config analysis.tables.t.rows\[0\] \(Original\): the base model m is not "
                                         r"evaluated"):
        plan.check_analysis(no_base)


def test_unregistered_benchmarks_are_named_with_the_registered_ones():
    plan.check_benchmarks(config(), ["toy", "math500"])
    bad = config(evaluation={"benchmarks": ["toy", "math_500"], "checkpoints": ["best"]})
    with pytest.raises(ValueError, match=r"config evaluation.benchmarks: unknown benchmark\(s\) math_500; "
                                         r"registered benchmarks: toy, math500"):
        plan.check_benchmarks(bad, ["toy", "math500"])


def test_benchmarks_of_the_other_data_kind_are_refused():
    # every evaluate job reads one folder: the toy data's (data.kind toy) or evaluation.data_dir (math); a
    # benchmark of the other kind failed in every evaluate job ("data file not found: results/data/toy/...")
    known = ["toy", "math500", "aime24", "mbpp_plus"]
    plan.check_benchmarks(config(data={"kind": "toy"}), known)
    plan.check_benchmarks(config(data={"kind": "math"}, evaluation={"benchmarks": ["math500", "mbpp_plus"]}), known)
    toy = config(data={"kind": "toy"}, evaluation={"benchmarks": ["toy", "math500", "aime24"]})
    with pytest.raises(ValueError) as err:
        plan.check_benchmarks(toy, known)
    assert str(err.value) == (
        "config evaluation.benchmarks: math500, aime24 cannot be evaluated with data.kind: toy (every evaluate job "
        "reads the toy data folder, which holds the toy task only); use data.kind: math, whose evaluate jobs read "
        "evaluation.data_dir")
    math = config(data={"kind": "math"}, evaluation={"benchmarks": ["math500", "toy"]})
    with pytest.raises(ValueError) as err:
        plan.check_benchmarks(math, known)
    assert str(err.value) == ("config evaluation.benchmarks: toy is the toy task's test split, written only with "
                              "data.kind: toy (here data.kind: math)")


@pytest.mark.parametrize("name", ["config.yaml", "paper.yaml"])
def test_shipped_figure2_compares_its_methods_at_one_G_and_T(name):
    # colours are per method: runs at a second G would be drawn as more lines of the same method, unlabelled
    from pathlib import Path

    import yaml

    shipped = yaml.safe_load((Path(__file__).parents[1] / "config" / name).read_text())
    runs = plan.select_runs(plan.runs_of(shipped), shipped["analysis"]["figures"]["figure2"]["select"])
    assert {"srt", "mgrpo_iqr"} <= {r.method for r in runs}
    assert len({(r.model, r.G, r.T) for r in runs}) == 1


def test_backend_settings_are_checked_before_any_job_as_the_job_reads_them():
    from mgrpo.cpu.trainer import settings_from as cpu_settings
    from mgrpo.verl_backend.trainer import settings_from as verl_settings

    plan.check_settings(config(), cpu_settings)  # steps 50, and lr 0.01 for mgrpo: both known, both valid
    misspelt = config(training={"settings": {"stepz": 50}})
    with pytest.raises(ValueError, match=r"config training.settings \(with methods.(srt|mgrpo).settings\): unknown "
                                         r"setting\(s\) 'stepz' for CpuSettings; known settings: steps, "):
        plan.check_settings(misspelt, cpu_settings)
    bad_value = config(methods={"mgrpo": {"settings": {"lr": -1}}})  # srt's settings are fine, mgrpo's are not
    with pytest.raises(ValueError, match=r"methods.mgrpo.settings\): setting 'lr' must be a finite number > 0"):
        plan.check_settings(bad_value, cpu_settings)
    unreadable = config(training={"settings": {"steps": "many"}})
    with pytest.raises(ValueError, match=r"setting 'steps': cannot read 'many' as int"):
        plan.check_settings(unreadable, cpu_settings)

    # verl: its own names and values are checked; a dotted key is verl's (Hydra): check_composed_settings
    fine = {"steps": 10, "momentum_in_loss": False, "actor_rollout_ref.actor.optim.lr": 1e-6, "vote_threshold": None}
    plan.check_settings(config(training={"settings": fine}, methods={}), verl_settings)
    with pytest.raises(ValueError, match=r"unknown setting\(s\) 'save_evry' for VerlSettings"):
        plan.check_settings(config(training={"settings": {"save_evry": 5}}, methods={}), verl_settings)
    with pytest.raises(ValueError, match=r"'eval_every' \(30\) must be a multiple of 'save_every' \(25\)"):
        plan.check_settings(config(training={"settings": {"eval_every": 30}}, methods={}), verl_settings)


def test_a_composed_backend_config_is_checked_once_per_method_and_settings_with_the_runs_arguments():
    calls = []
    plan.check_composed_settings(config(), lambda run, arguments: calls.append((run.run_id, arguments)))
    # five runs (in runs_of's order), two methods with one set of settings each: the first run of each
    assert calls == [("m/mgrpo/G8_T1.0_s0", {"momentum": 0.99, "iqr_k": 0.75, "N": 2,
                                             "settings": {"lr": 0.01, "steps": 50}}),
                     ("m/srt/G8_T1.0_s0", {"momentum": 0.99, "iqr_k": 0.75, "settings": {"steps": 50}})]

    def refuse_mgrpo(run, arguments):
        if run.method == "mgrpo":
            raise ValueError("verl config (override 'a.bc=1'): Could not override 'a.bc'")

    with pytest.raises(ValueError, match=r"^config training.settings \(with methods.mgrpo.settings\), composed for "
                                         r"run m/mgrpo/G8_T1.0_s0: verl config \(override 'a.bc=1'\)"):
        plan.check_composed_settings(config(), refuse_mgrpo)


def test_data_and_pretrain_options_are_checked_as_their_commands_read_them():
    from mgrpo.cli import argument_error

    def toy(data_options=None, pretrain_options=None, kind="toy"):
        return config(data={"kind": kind, "seed": 0, "options": data_options or {}},
                      base_models={"m": {"pretrain": {"seed": 0, "options": pretrain_options or {}}},
                                   "hub_model": {"hub": "Qwen/Qwen3-4B-Base"}})

    plan.check_options(toy({"operands": 6, "train_size": 100}, {"max_steps": 10, "target_acc": None}), argument_error)
    with pytest.raises(ValueError, match=r"config base_models.m.pretrain.options \(run as `mgrpo pretrain --data DIR "
                                         r"--out DIR --seed 0 --steps 10`\): .*unrecognized arguments: --steps 10"):
        plan.check_options(toy(pretrain_options={"steps": 10}), argument_error)
    with pytest.raises(ValueError, match=r"pretrain.options .*argument --max-steps: invalid int value: 'ten'"):
        plan.check_options(toy(pretrain_options={"max_steps": "ten"}), argument_error)
    # values the command's own check refuses (after argparse has accepted them)
    with pytest.raises(ValueError, match=r"pretrain.options .*hidden_size=66 is not divisible by num_attention_heads"):
        plan.check_options(toy(pretrain_options={"hidden_size": 66}), argument_error)
    with pytest.raises(ValueError, match=r"config data.options .*operands must be >= 2, got 1"):
        plan.check_options(toy({"operands": 1}), argument_error)
    # 2 operands give 10^2 * 3 = 300 distinct prompts; the default sizes ask for thousands of rows
    with pytest.raises(ValueError, match=r"config data.options .*operands=2 allows at most 150"):
        plan.check_options(toy({"operands": 2}), argument_error)
    # the MATH data takes no options: they would be silently dropped
    with pytest.raises(ValueError, match=r"config data.options: only the toy data takes options \(kind is 'math'\)"):
        plan.check_options(toy({"operands": 6}, kind="math"), argument_error)


@pytest.mark.parametrize("results, work", [("results", "results"), ("out", "./out/"), ("a/../out", "out")])
def test_a_work_dir_that_is_the_results_dir_is_refused_naming_both(results, work):
    with pytest.raises(ValueError, match=rf"config work_dir \('{work}'\) is the same folder as results_dir "
                                         rf"\('{results}'\)"):
        plan.check_folders(config(results_dir=results, work_dir=work))


def test_folders_apart_pass_even_with_a_shared_name_prefix():
    plan.check_folders(config())  # the defaults: results and work
    plan.check_folders(config(results_dir="out", work_dir="out_work"))
    plan.check_folders(config(results_dir="a/results", work_dir="a/work"))
    # one inside the other: a run's folder (results/runs/...) and its work (results/work/runs/...) still differ
    plan.check_folders(config(results_dir="results", work_dir="results/work"))
    plan.check_folders(config(results_dir="work/results", work_dir="work"))


@pytest.mark.parametrize("key, folder, culprit", [("results_dir", "notes.txt", "notes.txt"),
                                                   ("work_dir", "notes.txt", "notes.txt"),
                                                   ("results_dir", "notes.txt/results", "notes.txt")])
def test_a_results_or_work_dir_that_is_a_file_is_refused_naming_the_key(tmp_path, monkeypatch, key, folder, culprit):
    # results_dir on a file was a NotADirectoryError traceback from Snakemake's dry run; work_dir on one passed the
    # dry run and failed every train job
    monkeypatch.chdir(tmp_path)
    (tmp_path / "notes.txt").write_text("keep me")
    with pytest.raises(ValueError, match=rf"config {key} \('{folder}'\): {tmp_path / culprit} is a file, not a folder"):
        plan.check_folders(config(**{key: folder}))
    assert (tmp_path / "notes.txt").read_text() == "keep me"
    plan.check_folders(config(results_dir="new/results", work_dir="new/work"))  # folders yet to be made pass


@pytest.mark.parametrize("T", [float("nan"), float("inf")])
def test_a_temperature_that_is_not_finite_is_refused_naming_the_experiment(T):
    bad = config()
    bad["experiments"][1]["T"] = [1.0, T]
    with pytest.raises(ValueError, match=rf"config experiments\[b\]\.T: {T} is not a finite temperature"):
        plan.check_hyperparameters(bad)


@pytest.mark.parametrize("section, where", [
    ({"temperature": float("nan")}, r"evaluation\.temperature: nan"),
    ({"temperature": float("inf")}, r"evaluation\.temperature: inf"),
    ({"code_options": {"timeout_s": float("inf")}}, r"evaluation\.code_options\.timeout_s: inf"),
])
def test_an_evaluation_number_that_is_not_finite_is_refused_naming_the_key(section, where):
    good = config()
    plan.check_hyperparameters(good)
    bad = config(evaluation={**good["evaluation"], **section})
    with pytest.raises(ValueError, match=rf"config {where} is not a finite number"):
        plan.check_hyperparameters(bad)


def test_an_infinite_collapse_threshold_is_refused_naming_the_key():
    with pytest.raises(ValueError, match=r"config analysis\.collapse\.min_drop: inf is not a finite number"):
        plan.check_analysis(config(analysis={"collapse": {"min_drop": float("inf")}}))


@pytest.mark.parametrize("min_drop", [1, 10])
def test_a_collapse_threshold_of_one_or_more_which_no_run_can_cross_is_refused(min_drop):
    # accuracies lie in [0, 1], so a drop below the peak is at most 1 (relative: at most 100%): min_drop 10 (meant as
    # 10 points) marked no run collapsed, a crash from 0.8 to 0.1 included
    with pytest.raises(ValueError, match=rf"config analysis\.collapse\.min_drop: {min_drop} is not below 1"):
        plan.check_analysis(config(analysis={"collapse": {"min_drop": min_drop}}))
    from analysis.runs import CollapseRule
    with pytest.raises(ValueError, match="must be < 1"):
        CollapseRule(min_drop=min_drop)
    assert CollapseRule(min_drop=0.6).fell(0.8, 0.1)  # 0.7 below the peak: the largest thresholds below 1 work
