"""What `--profile slurm` makes the real snakemake-executor-plugin-slurm pass to sbatch, without a cluster.

The SLURM commands are stand-ins on PATH: the account and MinJobAge checks are answered, and sbatch refuses every
job, so that the plugin prints the sbatch line it built ("sbatch call: ...") and Snakemake stops at once. The
expected flags are SLURM's, from the config's resources and the rule's threads (tests/test_workflow_slurm.py
runs the same profile against a real cluster, where one is available).
"""
import shlex

import yaml

from test_workflow_helpers import REPO, copy_workflow, environment, snakemake, tiny_config, write_config

STUBS = {
    "sbatch": 'echo "stand-in sbatch: not submitted" >&2; exit 1',
    "sacctmgr": "echo testacct",
    "sshare": "echo testacct",
    "sacct": "exit 0",
    "squeue": "exit 0",
    "scancel": "exit 0",
    "scontrol": 'echo "MinJobAge = 300 sec"',
    "sinfo": 'echo "gpu-test*"',
}


def sbatch_flags(tmp_path, workdir, target, configfile, *extra) -> list[str]:
    """The options of the one sbatch call the plugin builds for target (its --wrap command left out)."""
    stubs = tmp_path / "slurm-stubs"
    stubs.mkdir()
    for name, body in STUBS.items():
        (stubs / name).write_text(f"#!/bin/sh\n{body}\n")
        (stubs / name).chmod(0o755)
    env = environment(stubs, MGRPO_SLURM_PARTITION="gpu-test", MGRPO_SLURM_ACCOUNT="testacct")
    result = snakemake(workdir, target, "--profile", "slurm", "--configfile", configfile, "--retries", "0",
                       "--slurm-init-seconds-before-status-checks", "1", "--seconds-between-status-checks", "1",
                       *extra, env=env, timeout=300)
    lines = result.stdout.splitlines()
    calls = [lines[i + 1].strip() for i, line in enumerate(lines) if line.strip() == "sbatch call:"]
    assert len(calls) == 1, result.stdout[-4000:]
    return shlex.split(calls[0].split(" --wrap=")[0])


def test_verl_train_job_gets_cpus_per_gpu_one_node_and_requeue(tmp_path):
    workdir = copy_workflow(tmp_path / "clone")
    paper = yaml.safe_load((REPO / "config" / "paper.yaml").read_text())
    paper["resources"]["train"] = {"gpu": 8, "cpus_per_gpu": 8, "mem_mb": 480000, "runtime": 2880}
    write_config(workdir / "paper_cpg.yaml", paper)
    # The train job's inputs exist, so that it is the one job to submit (the local download and data rules
    # would otherwise run first).
    for folder in ("data/MATH", "models/qwen3_4b", "results/data/math"):
        (workdir / folder).mkdir(parents=True)
    (workdir / "data/benchmarks.prepared.txt").write_text("")  # verl_data reads math500.jsonl (written first)
    for split in ("train", "test"):
        (workdir / "results/data/math" / f"{split}.parquet").write_text("")

    flags = sbatch_flags(tmp_path, workdir, "results/runs/qwen3_4b/srt/G16_T0.8_s0/metrics.jsonl",
                         "paper_cpg.yaml", "--cores", "all")

    assert "--gpus=8" in flags and "--cpus-per-gpu=8" in flags
    assert not any(flag.startswith("--cpus-per-task") for flag in flags)  # no default overrides it
    assert "--nodes=1" in flags  # nodes absent from the config: still one node, not 8 GPUs spread over several
    assert "--requeue" in flags  # preempted or on a failed node: back into the queue, not lost
    assert ["-p", "gpu-test"] == flags[flags.index("-p"):flags.index("-p") + 2]
    assert ["-A", "testacct"] == flags[flags.index("-A"):flags.index("-A") + 2]
    assert ["-t", "2880"] == flags[flags.index("-t"):flags.index("-t") + 2]


def test_cpu_train_job_gets_its_threads_as_cpus_per_task(tmp_path):
    workdir = copy_workflow(tmp_path / "clone")
    config = tiny_config(methods=("srt",))
    config["training"]["settings"] = {"threads": 3}
    write_config(workdir / "threads.yaml", config)
    toy = workdir / "results/data/toy"
    toy.mkdir(parents=True)
    for split in ("pretrain", "train", "test", "val"):
        (toy / f"{split}.jsonl").write_text("")
    (workdir / "results/base_models/toy").mkdir(parents=True)

    # --cores caps a rule's threads even for cluster jobs (Snakemake), so it is above 3 here.
    flags = sbatch_flags(tmp_path, workdir, "results/runs/toy/srt/G4_T1.0_s0/metrics.jsonl", "threads.yaml",
                         "--cores", "4")

    assert "--cpus-per-task=3" in flags
    assert "--requeue" in flags


def test_an_unset_partition_or_account_variable_stops_the_workflow_before_any_submission(tmp_path):
    workdir = copy_workflow(tmp_path / "clone")
    write_config(workdir / "tiny.yaml", tiny_config(methods=("srt",)))
    env = environment(MGRPO_SLURM_PARTITION="gpu-test")
    env.pop("MGRPO_SLURM_ACCOUNT", None)
    assert "MGRPO_SLURM_ACCOUNT" not in env
    result = snakemake(workdir, "-n", "--profile", "slurm", "--configfile", "tiny.yaml", env=env, timeout=300)
    assert result.returncode != 0
    assert "profile default-resources slurm_account: MGRPO_SLURM_ACCOUNT is not set" in result.stdout, \
        result.stdout[-3000:]
    env["MGRPO_SLURM_ACCOUNT"] = "testacct"  # both set: the plan is made
    result = snakemake(workdir, "-n", "--profile", "slurm", "--configfile", "tiny.yaml", env=env, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:]
