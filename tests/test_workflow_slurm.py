"""`--profile slurm` against a real one-node SLURM cluster (slurm_cluster.py): the real executor plugin submits
the train job, SLURM allocates it the rule's GPUs, CPUs, memory and time in the profile's partition and
account, the real `mgrpo train` runs inside the allocation, and when SLURM requeues the job mid-run (what
preemption with PreemptMode=REQUEUE does) the same job restarts and resumes from its newest checkpoint.

Needs root and the SLURM/munge packages; skipped without them, unless MGRPO_REQUIRE_SLURM=1 (CI) makes that
a failure."""
import json
import os
import shutil
import subprocess
import sys
import time

import pytest
import yaml

from slurm_cluster import SlurmCluster, missing_requirement
from test_workflow_helpers import REPO, copy_workflow, environment, snakemake, tiny_config, write_config

RUN = "results/runs/toy/srt/G4_T1.0_s0"
WORK = "work/runs/toy/srt/G4_T1.0_s0"
RESOURCES = {"gpu": 2, "runtime": 90, "mem_mb": 4000, "cpus_per_task": 2}

# The real CLI, behind a shim that records what each start of it saw of its allocation.
MGRPO_SHIM = """#!/bin/sh
echo "$SLURM_JOB_ID $CUDA_VISIBLE_DEVICES $*" >> "{log}"
exec "{mgrpo}" "$@"
"""


@pytest.fixture(scope="module")
def cluster():
    reason = missing_requirement()
    if reason:
        if os.environ.get("MGRPO_REQUIRE_SLURM") == "1":
            pytest.fail(f"MGRPO_REQUIRE_SLURM=1 but {reason}")
        pytest.skip(reason)
    with SlurmCluster(partition="gpu-test") as running:
        yield running


def test_profile_is_where_snakemake_looks_for_it():
    # `--profile slurm` resolves ./slurm first; Snakemake 9 reads config.v9+.yaml there.
    profile = yaml.safe_load((REPO / "slurm" / "config.v9+.yaml").read_text())
    assert profile["executor"] == "slurm"
    assert {"slurm_partition", "slurm_account", "runtime", "mem_mb"} <= set(profile["default-resources"])
    assert "software-deployment-method" not in profile  # an empty list there is rejected by Snakemake


@pytest.mark.slow
def test_train_job_gets_its_resources_and_resumes_after_slurm_requeues_it(cluster, tmp_path):
    workdir = copy_workflow(tmp_path / "clone")
    config = tiny_config(methods=("srt",))
    config["base_models"]["toy"]["pretrain"]["options"] = {"steps": 40}
    config["training"]["settings"] = {"steps": 30, "eval_every": 5, "save_every": 5, "eval_prompts": 20,
                                      "eval_samples": 2}
    config["analysis"] = {"tables": {}, "figures": {}}
    config["resources"] = {"train": RESOURCES}
    write_config(workdir / "one.yaml", config)
    # Data and base model locally first, so that the cluster runs the train job alone.
    local = snakemake(workdir, "results/base_models/toy", "--cores", "1", "--configfile", "one.yaml")
    assert local.returncode == 0, local.stdout[-3000:]

    starts = tmp_path / "mgrpo-starts.log"
    shim = tmp_path / "bin" / "mgrpo"
    shim.parent.mkdir()
    shim.write_text(MGRPO_SHIM.format(log=starts, mgrpo=shutil.which("mgrpo")))
    shim.chmod(0o755)
    env = cluster.env(PATH=f"{shim.parent}{os.pathsep}{environment()['PATH']}", WANDB_MODE="offline",
                      MGRPO_SLURM_PARTITION="gpu-test", MGRPO_SLURM_ACCOUNT="testacct")
    command = [sys.executable, "-m", "snakemake", f"{RUN}/metrics.jsonl", "--cores", "all", "--profile", "slurm",
               "--configfile", "one.yaml", "--slurm-status-command", "squeue",  # no accounting DB: no sacct
               "--slurm-init-seconds-before-status-checks", "1", "--seconds-between-status-checks", "1"]
    log = tmp_path / "snakemake.log"
    work = workdir / WORK
    with log.open("w") as out:
        process = subprocess.Popen(command, cwd=workdir, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 300
        while not (work / "step_000010").is_dir() and time.time() < deadline and process.poll() is None:
            time.sleep(0.2)
        assert (work / "step_000010").is_dir(), f"training never reached its second checkpoint:\n{log.read_text()[-3000:]}"
        jobs = cluster.run("squeue", "-h", "-o", "%i").split()
        assert len(jobs) == 1, jobs
        job_id = jobs[0]
        cluster.run("scontrol", "requeue", job_id)
        deadline = time.time() + 120
        while cluster.job(job_id)["JobState"] != "PENDING" and time.time() < deadline:
            time.sleep(0.2)
        assert cluster.job(job_id)["JobState"] == "PENDING", cluster.job(job_id)
        # Killed and waiting to restart: what the first start left behind.
        before = {row["step"]: row for row in map(json.loads, (work / "metrics.jsonl").read_text().splitlines())}
        resumed_from = int(max(work.glob("step_*")).name.split("_")[1])
        # SLURM holds a requeued job back for a while (BeginTime); let it start again now.
        cluster.run("scontrol", "update", f"jobid={job_id}", "StartTime=now")
        process.wait(timeout=400)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, log.read_text()[-4000:]

    job = cluster.job(job_id)
    assert cluster.run("squeue", "-h", "-t", "all", "-o", "%i").split() == [job_id]  # requeued, not resubmitted
    assert (job["JobState"], job["Restarts"]) == ("COMPLETED", "1")
    assert job["Comment"].startswith("rule_train_wildcards_toy_srt")
    assert (job["Partition"], job["Account"], job["TimeLimit"]) == ("gpu-test", "testacct", "01:30:00")
    assert job["TresPerJob"] == "gres:gpu:2"
    assert {"cpu=2", "mem=4000M"} <= set(job["TRES"].split(","))
    # `mgrpo train` started twice inside that job, each time seeing the two GPUs SLURM bound to it.
    train_starts = [line.split() for line in starts.read_text().splitlines() if " train " in f" {line} "]
    assert [(s[0], len(s[1].split(","))) for s in train_starts] == [(job_id, 2), (job_id, 2)]

    after = [json.loads(line) for line in (workdir / RUN / "metrics.jsonl").read_text().splitlines()]
    assert [row["step"] for row in after] == list(range(31))  # every step exactly once
    assert 10 <= resumed_from < 30
    # Steps up to the checkpoint were kept from the first start, not recomputed.
    for row in after[1:resumed_from + 1]:
        assert row["step_seconds"] == before[row["step"]]["step_seconds"]
    assert any(after[step]["step_seconds"] != before.get(step, {}).get("step_seconds")
               for step in range(resumed_from + 1, 31))
